//! Load generators' output (h2load, wrk) and the statistics benchmarks report from it.

pub mod h2load;
pub mod wrk;

/// The `q` quantile (0..=1) of `sorted` values, nearest rank; NaN when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The `q` quantile of sorted microsecond values, in milliseconds; NaN when empty.
pub fn percentile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() - 1) as f64 * q).round() as usize;
    sorted_us[i.min(sorted_us.len() - 1)] as f64 / 1000.0
}

/// (lowest, median, highest) of the finite values; NaNs when there are none.
pub fn spread(v: &[f64]) -> (f64, f64, f64) {
    let lo = v
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f64::INFINITY, f64::min);
    let hi = v
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    match median(v.to_vec()) {
        Some(m) => (lo, m, hi),
        None => (f64::NAN, f64::NAN, f64::NAN),
    }
}

/// The median of the finite values; `None` when there are none.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The lowest finite value; `None` when there is none.
pub fn lowest(v: &[f64]) -> Option<f64> {
    v.iter()
        .copied()
        .filter(|x| x.is_finite())
        .min_by(f64::total_cmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_medians_and_lows() {
        assert_eq!(percentile_ms(&[1000, 2000, 3000], 0.5), 2.0);
        assert_eq!(percentile_ms(&[1000, 2000, 3000], 0.99), 3.0);
        assert!(percentile_ms(&[], 0.5).is_nan());
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.0), 1.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 1.0), 4.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN]), None);
        assert_eq!(lowest(&[3.0, f64::NAN, 2.5]), Some(2.5));
        assert_eq!(lowest(&[]), None);
    }
}
