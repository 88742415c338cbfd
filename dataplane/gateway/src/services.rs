//! What the stages share across config generations: things a reload must not reset (the
//! shared bucket store the daemon plugs in, the metrics every stage counts into).

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::limits::SharedBuckets;
use crate::metrics::Metrics;

/// Shared by every generation of the chain.
pub(crate) struct Services {
    /// The fleet's bucket store, once the daemon sets one (see `Gateway::set_shared_buckets`).
    pub buckets: ArcSwapOption<Arc<dyn SharedBuckets>>,
    pub metrics: Arc<Metrics>,
}

impl Services {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            buckets: ArcSwapOption::empty(),
            metrics,
        }
    }

    /// The shared bucket store, if one is set.
    pub fn buckets(&self) -> Option<Arc<dyn SharedBuckets>> {
        self.buckets.load_full().map(|b| Arc::clone(&*b))
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("shared_buckets", &self.buckets.load().is_some())
            .finish_non_exhaustive()
    }
}
