//! A lock-free histogram of durations, written out in Prometheus's text format.
//!
//! Every request and every queued batch records into one, from many threads at once, so
//! recording is a few relaxed atomic adds; reading (a scrape) sums what is there.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Upper bounds of the buckets, in microseconds (the last catches everything).
pub const BOUNDS_US: [u64; 18] = [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    u64::MAX,
];

#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Observations per bucket (not cumulative).
    buckets: [AtomicU64; BOUNDS_US.len()],
    /// Microseconds of every observation, together (the `_sum`).
    sum_us: AtomicU64,
}

impl DurationHistogram {
    pub fn record(&self, took: Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = BOUNDS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BOUNDS_US.len() - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations per bucket, in [`BOUNDS_US`]'s order (not cumulative).
    pub fn counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// `# HELP`, `# TYPE` and the cumulative `_bucket`, `_sum` and `_count` lines of
    /// `name` (in seconds).
    pub fn write_prometheus(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in BOUNDS_US.iter().zip(self.counts()) {
            cumulative += n;
            let le = if *bound == u64::MAX {
                "+Inf".to_owned()
            } else {
                format!("{}", *bound as f64 / 1e6)
            };
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them_and_sum_up() {
        let h = DurationHistogram::default();
        h.record(Duration::from_micros(100));
        h.record(Duration::from_micros(101));
        h.record(Duration::from_secs(3600));
        let counts = h.counts();
        assert_eq!((counts[0], counts[1], counts[17]), (1, 1, 1));
        let mut text = String::new();
        h.write_prometheus(&mut text, "x_seconds", "X.");
        assert!(
            text.contains("x_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_count 3\n"), "{text}");
        assert!(text.contains("x_seconds_sum 3600.000201\n"), "{text}");
    }
}
