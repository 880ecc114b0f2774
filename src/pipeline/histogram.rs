//! A fixed-bucket time histogram for the line's status: verdict latency and decode
//! time. Buckets are log-spaced (18 per decade from 10 µs to 900 s, whole µs below; the standard
//! Prometheus bounds 1-2.5-5 among them), so recording is a binary search and an
//! increment, the memory is fixed, and a status snapshot copies a few kilobytes however
//! many units ran. Quantiles are exact to the bucket (the bucket's upper bound, never
//! above the exact maximum, which is kept). It owns counting only, not rendering.

use serde::Serialize;

/// Bucket mantissas per decade: upper bounds 10, 11, 12 … 90 × 10^k µs.
const MANTISSA: [u64; 18] = [
    10, 11, 12, 13, 15, 17, 20, 22, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90,
];
/// Decades from 10 µs: 10 µs … 900 s.
const DECADES: usize = 8;
/// Whole-µs buckets below 10 µs.
const SMALL: usize = 9;
/// Finite buckets, plus one that counts everything above the last bound.
pub const BUCKETS: usize = SMALL + MANTISSA.len() * DECADES + 1;

/// Upper bounds (inclusive), µs, of the finite buckets: 1 … 9, then 18 per decade.
const BOUNDS: [u64; BUCKETS - 1] = {
    let mut b = [0u64; BUCKETS - 1];
    let mut i = 0;
    while i < SMALL {
        b[i] = i as u64 + 1;
        i += 1;
    }
    let mut d = 0;
    let mut scale = 1u64;
    while d < DECADES {
        let mut m = 0;
        while m < MANTISSA.len() {
            b[SMALL + d * MANTISSA.len() + m] = MANTISSA[m] * scale;
            m += 1;
        }
        scale *= 10;
        d += 1;
    }
    b
};

/// Counts of durations in fixed log-spaced buckets, with their sum and exact maximum.
#[derive(Clone, PartialEq, Eq)]
pub struct TimeHistogram {
    counts: [u64; BUCKETS],
    count: u64,
    sum_us: u64,
    max_us: u64,
}

impl Default for TimeHistogram {
    fn default() -> Self {
        TimeHistogram {
            counts: [0; BUCKETS],
            count: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

impl std::fmt::Debug for TimeHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeHistogram")
            .field("count", &self.count)
            .field("sum_us", &self.sum_us)
            .field("max_us", &self.max_us)
            .finish_non_exhaustive()
    }
}

impl TimeHistogram {
    /// Record one duration, µs. Never allocates.
    pub fn record(&mut self, us: u64) {
        let i = BOUNDS.partition_point(|&b| b < us);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
    }

    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the durations, µs.
    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// The largest duration, µs (exact; 0 when empty).
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// The `q` quantile (0..=1), µs: the upper bound of the bucket holding it, capped at
    /// the exact maximum; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64 * q.clamp(0.0, 1.0)).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return BOUNDS.get(i).copied().unwrap_or(u64::MAX).min(self.max_us);
            }
        }
        self.max_us
    }

    /// Durations at or below `bound_us`: exact when `bound_us` is a bucket bound (every
    /// 1-2-2.5-5 × 10^k µs is), otherwise those of the buckets wholly below it.
    pub fn count_le(&self, bound_us: u64) -> u64 {
        BOUNDS
            .iter()
            .zip(&self.counts)
            .take_while(|(b, _)| **b <= bound_us)
            .map(|(_, c)| c)
            .sum()
    }

    /// Non-empty buckets as (inclusive upper bound µs, count); the overflow bucket has
    /// bound `u64::MAX`.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (BOUNDS.get(i).copied().unwrap_or(u64::MAX), *c))
    }
}

/// The JSON form: a summary, not the buckets.
impl Serialize for TimeHistogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("TimeHistogram", 5)?;
        st.serialize_field("count", &self.count)?;
        st.serialize_field("sum_us", &self.sum_us)?;
        st.serialize_field("p50_us", &self.quantile_us(0.5))?;
        st.serialize_field("p99_us", &self.quantile_us(0.99))?;
        st.serialize_field("max_us", &self.max_us)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_rise_and_hold_the_prometheus_bounds() {
        assert!(BOUNDS.windows(2).all(|w| w[0] < w[1]), "{BOUNDS:?}");
        for b in [
            1_000u64, 2_500, 5_000, 10_000, 25_000, 100_000, 250_000, 1_000_000,
        ] {
            assert!(BOUNDS.contains(&b), "{b}");
        }
        assert_eq!(BOUNDS.first(), Some(&1));
    }

    #[test]
    fn quantiles_are_within_a_bucket_and_the_max_is_exact() {
        let mut h = TimeHistogram::default();
        assert_eq!(h.quantile_us(0.5), 0);
        for us in 1..=1000u64 {
            h.record(us * 100);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max_us(), 100_000);
        assert_eq!(h.sum_us(), 100 * 1000 * 1001 / 2);
        let p50 = h.quantile_us(0.5);
        assert!((50_000..=55_000).contains(&p50), "{p50}");
        let p99 = h.quantile_us(0.99);
        assert!((99_000..=100_000).contains(&p99), "{p99}");
        assert_eq!(h.quantile_us(1.0), 100_000);
        assert_eq!(h.count_le(10_000), 100);
        assert_eq!(h.count_le(u64::MAX), 1000);
        assert_eq!(h.buckets().map(|b| b.1).sum::<u64>(), 1000);
        h.record(u64::MAX / 2);
        assert_eq!(h.buckets().last(), Some((u64::MAX, 1)));
    }
}
