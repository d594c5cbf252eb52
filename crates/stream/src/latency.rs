//! Event-to-commit latency in whole milliseconds: a fixed histogram (1 ms buckets up to
//! 10 s, then one overflow bucket and the maximum), so a run of days holds the same few
//! kilobytes as a run of seconds.

const BUCKETS: usize = 10_001;

/// Counts of latencies by millisecond.
#[derive(Clone, Debug)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    over: u64,
    max: i64,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            over: 0,
            max: 0,
            total: 0,
        }
    }
}

impl Histogram {
    /// Records one latency; a negative one (a clock behind the exchange's) counts as 0.
    pub(crate) fn record(&mut self, ms: i64) {
        let ms = ms.max(0);
        self.max = self.max.max(ms);
        self.total += 1;
        match usize::try_from(ms).ok().filter(|&i| i < BUCKETS) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
    }

    /// The smallest latency at or below which `p` (0..=1) of the records lie; `None`
    /// without records.
    pub(crate) fn percentile(&self, p: f64) -> Option<i64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (ms, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(ms as i64);
            }
        }
        Some(self.max)
    }

    pub(crate) fn max(&self) -> Option<i64> {
        (self.total > 0).then_some(self.max)
    }

    pub(crate) fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.over = 0;
        self.max = 0;
        self.total = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_records() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(0.5), None);
        for ms in 1..=100 {
            h.record(ms);
        }
        assert_eq!(h.percentile(0.5), Some(50));
        assert_eq!(h.percentile(0.99), Some(99));
        assert_eq!(h.percentile(1.0), Some(100));
        h.record(-5);
        assert_eq!(h.percentile(0.0), Some(0), "a negative latency counts as 0");
        h.record(50_000);
        assert_eq!(h.max(), Some(50_000));
        assert_eq!(
            h.percentile(1.0),
            Some(50_000),
            "the overflow bucket reports the max"
        );
        h.clear();
        assert_eq!(h.max(), None);
    }
}
