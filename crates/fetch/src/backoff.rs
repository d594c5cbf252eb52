//! Exponential backoff with jitter, shared by the Vision and REST clients and the stream
//! crate's reconnects: retries of many concurrent requests spread out instead of hitting
//! the server together.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A source of jittered delays.
#[derive(Debug, Default)]
pub struct Jitter {
    random: RandomState,
    seq: AtomicU64,
}

impl Jitter {
    /// The wait before retry `n` (1-based): `base * 2^(n-1)`, capped at `max`, then a
    /// random point in its upper half.
    pub fn delay(&self, base: Duration, max: Duration, n: u32) -> Duration {
        let full = base
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(max);
        let mut h = self.random.build_hasher();
        h.write_u64(self.seq.fetch_add(1, Ordering::Relaxed));
        let frac = (h.finish() % 1000) as f64 / 1000.0;
        full.mul_f64(0.5 + frac / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_stay_in_the_upper_half_and_are_capped() {
        let j = Jitter::default();
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        for n in 1..=8 {
            let full = (base * 2u32.pow(n - 1)).min(max);
            for _ in 0..50 {
                let d = j.delay(base, max, n);
                assert!(
                    d >= full / 2 && d <= full,
                    "retry {n}: {d:?} not in [{full:?}/2, {full:?}]"
                );
            }
        }
        assert!(j.delay(base, max, 0) <= base, "n = 0 does not underflow");
    }
}
