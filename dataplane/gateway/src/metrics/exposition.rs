//! Writing metric families through the `prometheus-client` registry (OpenMetrics text).
//!
//! Vigil's counters live in plain atomics and maps on the hot path; at scrape time every source
//! (the gateway, the daemon's XDP and thermal state, the fleet) describes its families through
//! one [`Exposition`], which a single registry encodes. Names are written as Prometheus shows
//! them: a counter's name ends in `_total` here and the encoder adds nothing twice.

use std::fmt;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet},
    metrics::MetricType,
    registry::Registry,
};

/// A source of metric families, called on every scrape.
pub type MetricsSource =
    std::sync::Arc<dyn Fn(&mut Exposition<'_, '_>) -> fmt::Result + Send + Sync>;

/// The families of one scrape.
pub struct Exposition<'a, 'b> {
    enc: &'a mut DescriptorEncoder<'b>,
}

impl fmt::Debug for Exposition<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exposition")
    }
}

impl Exposition<'_, '_> {
    fn counter_name(name: &str) -> &str {
        name.strip_suffix("_total").unwrap_or(name)
    }

    /// A counter without labels; `name` ends in `_total`.
    pub fn counter(&mut self, name: &str, help: &str, v: u64) -> fmt::Result {
        self.enc
            .encode_descriptor(Self::counter_name(name), help, None, MetricType::Counter)?
            .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)
    }

    /// A counter with a fractional value (seconds).
    pub fn counter_f64(&mut self, name: &str, help: &str, v: f64) -> fmt::Result {
        self.enc
            .encode_descriptor(Self::counter_name(name), help, None, MetricType::Counter)?
            .encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(&v, None)
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, v: i64) -> fmt::Result {
        self.enc
            .encode_descriptor(name, help, None, MetricType::Gauge)?
            .encode_gauge(&v)
    }

    /// A gauge with a fractional value.
    pub fn gauge_f64(&mut self, name: &str, help: &str, v: f64) -> fmt::Result {
        self.enc
            .encode_descriptor(name, help, None, MetricType::Gauge)?
            .encode_gauge(&v)
    }

    /// A labelled counter family; the family is written (HELP and TYPE) even without rows.
    pub fn counters<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (L, u64)>,
    ) -> fmt::Result {
        let mut m = self.enc.encode_descriptor(
            Self::counter_name(name),
            help,
            None,
            MetricType::Counter,
        )?;
        for (labels, v) in rows {
            m.encode_family(&labels)?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&v, None)?;
        }
        Ok(())
    }

    /// A labelled gauge family (whole numbers as `i64`, fractions such as temperatures as
    /// `f64`).
    pub fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (L, V)>,
    ) -> fmt::Result {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, v) in rows {
            m.encode_family(&labels)?.encode_gauge(&v)?;
        }
        Ok(())
    }

    /// A histogram without labels: `(upper bound, count in this bucket alone)`, `+Inf`
    /// included; the encoder writes them cumulated.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        sum: f64,
        count: u64,
        buckets: &[(f64, u64)],
    ) -> fmt::Result {
        self.enc
            .encode_descriptor(name, help, None, MetricType::Histogram)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, buckets, None)
    }

    /// A summary without quantiles: `_count` and `_sum` (e.g. TPM signature time).
    pub fn summary(&mut self, name: &str, help: &str, sum: f64, count: u64) -> fmt::Result {
        // The encoder has no summary writer; a histogram with only the +Inf bucket carries the
        // same count and sum and is what dashboards read as a rate of sum over count.
        self.histogram(name, help, sum, count, &[(f64::INFINITY, count)])
    }
}

/// All sources, encoded by one registry at scrape time.
struct Sources(Vec<MetricsSource>);

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sources({})", self.0.len())
    }
}

impl Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let mut e = Exposition { enc: &mut enc };
        for s in &self.0 {
            s(&mut e)?;
        }
        Ok(())
    }
}

/// The OpenMetrics text of `sources`, in order.
pub fn encode(sources: Vec<MetricsSource>) -> String {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Sources(sources)));
    let mut out = String::with_capacity(8192);
    // Writing into a String cannot fail; a source's own fmt::Error ends the text early.
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
