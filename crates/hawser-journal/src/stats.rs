//! What the writer measures for monitoring: how long each `fdatasync` took
//! and how many records it made durable (group commit's batch), as
//! histograms with fixed buckets, counted with relaxed atomics by the
//! writer thread and read by anyone (a scrape) without a lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the fsync latency buckets, in seconds: 100 µs (a fast
/// NVMe) to 2.5 s (a disk in trouble).
pub const SYNC_SECONDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Upper bounds of the batch-size buckets, in records per fsync.
pub const BATCH_RECORDS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A histogram with fixed buckets (Prometheus's kind: each bucket counts the
/// observations at or below its bound; one more above the last).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; the last is above every bound.
    counts: Box<[AtomicU64]>,
    /// The sum of the observations, in units of `unit`.
    sum: AtomicU64,
    /// What one unit of `sum` is (1e-9 for seconds counted in nanoseconds).
    unit: f64,
}

/// A histogram as read: cumulative counts per bound, the sum and the count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound, observations at or below it), in bound order.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of the observations.
    pub sum: f64,
    /// How many observations (the `+Inf` bucket).
    pub count: u64,
}

impl Histogram {
    /// Empty, with these bucket bounds; sums counted in `unit`s.
    pub fn new(bounds: &'static [f64], unit: f64) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            unit,
        }
    }

    /// Counts one observation of `value` (in the histogram's own units:
    /// seconds, records).
    pub fn observe(&self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum
            .fetch_add((value / self.unit).round() as u64, Ordering::Relaxed);
    }

    /// What it has counted so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (i, &bound) in self.bounds.iter().enumerate() {
            total += self.counts[i].load(Ordering::Relaxed);
            buckets.push((bound, total));
        }
        total += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            sum: self.sum.load(Ordering::Relaxed) as f64 * self.unit,
            count: total,
        }
    }
}

/// The writer's histograms.
#[derive(Debug)]
pub struct WriterStats {
    /// Seconds each segment fsync took.
    pub sync_seconds: Histogram,
    /// Records each segment fsync made durable.
    pub batch_records: Histogram,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            sync_seconds: Histogram::new(&SYNC_SECONDS, 1e-9),
            batch_records: Histogram::new(&BATCH_RECORDS, 1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::new(&BATCH_RECORDS, 1.0);
        for v in [1.0, 1.0, 3.0, 2000.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.sum, 2005.0);
        assert_eq!(s.buckets[0], (1.0, 2));
        assert_eq!(s.buckets[2], (4.0, 3));
        assert_eq!(
            s.buckets.last(),
            Some(&(1024.0, 3)),
            "2000 is above every bound"
        );
    }

    #[test]
    fn seconds_are_summed_in_nanoseconds() {
        let h = Histogram::new(&SYNC_SECONDS, 1e-9);
        h.observe(0.0003);
        h.observe(0.002);
        let s = h.snapshot();
        assert!((s.sum - 0.0023).abs() < 1e-12);
        assert_eq!(s.buckets[1], (0.00025, 0));
        assert_eq!(s.buckets[2], (0.0005, 1));
    }
}
