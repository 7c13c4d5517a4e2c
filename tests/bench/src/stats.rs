//! Percentiles and a least-squares slope: the only statistics the report uses.

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Percentiles of `samples_us` (microseconds), in milliseconds; all zero when empty.
pub fn percentiles(samples_us: &mut [u64]) -> Percentiles {
    if samples_us.is_empty() {
        return Percentiles::default();
    }
    samples_us.sort_unstable();
    let at = |q: f64| {
        let i = ((samples_us.len() as f64 * q).ceil() as usize).clamp(1, samples_us.len()) - 1;
        samples_us[i] as f64 / 1000.0
    };
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        p999: at(0.999),
        max: *samples_us.last().unwrap_or(&0) as f64 / 1000.0,
    }
}

/// Slope and intercept of the least-squares line through `points`.
pub fn linear_fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if points.len() < 2 {
        return (0.0, points.first().map(|p| p.1).unwrap_or(0.0));
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let slope = if sxx == 0.0 { 0.0 } else { sxy / sxx };
    (slope, my - slope * mx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let mut v: Vec<u64> = (1..=1000).map(|x| x * 1000).collect();
        let p = percentiles(&mut v);
        assert_eq!((p.p50, p.p99, p.p999, p.max), (500.0, 990.0, 999.0, 1000.0));
    }

    #[test]
    fn slope_of_a_line() {
        let (s, i) = linear_fit(&[(0.0, 10.0), (1.0, 12.0), (2.0, 14.0)]);
        assert!((s - 2.0).abs() < 1e-9 && (i - 10.0).abs() < 1e-9);
    }
}
