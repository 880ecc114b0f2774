//! The pool forecast: whether the pool will carry the running batch, from the line
//! rate and what the batch still needs. A pure calculation; the caller supplies the
//! counts (from `Pool::available`) and decides what an alarm does.

/// Forecast settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Raise the low-water alarm when the pool would run dry within this many minutes
    /// of production at the current rate (for the part of the batch still to make).
    #[serde(default = "default_minutes")]
    pub low_water_minutes: f64,
}

use serde::{Deserialize, Serialize};

fn default_minutes() -> f64 {
    30.0
}

impl Default for Forecast {
    fn default() -> Self {
        Forecast {
            low_water_minutes: default_minutes(),
        }
    }
}

/// What the forecast says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolLevel {
    /// Raise the low-water alarm.
    pub alarm: bool,
    /// Serials the running batch will consume within the low-water horizon.
    pub needed_in_horizon: u64,
    /// Minutes of production the available serials last at this rate (`None`: the
    /// line is not running).
    pub minutes_left: Option<f64>,
    /// Serials missing to finish the batch (0 when the pool covers it).
    pub shortfall: u64,
}

impl Forecast {
    /// Assess `available` serials (Unallocated plus those in hand) against a batch that
    /// still needs `batch_remaining` units at `rate_per_min` units per minute.
    pub fn assess(&self, available: u64, batch_remaining: u64, rate_per_min: f64) -> PoolLevel {
        let rate = if rate_per_min.is_finite() && rate_per_min > 0.0 {
            rate_per_min
        } else {
            0.0
        };
        let horizon = (rate * self.low_water_minutes.max(0.0)).ceil();
        // `as` saturates for floats; the value is non-negative.
        let needed_in_horizon = batch_remaining.min(horizon as u64);
        PoolLevel {
            alarm: available < needed_in_horizon,
            needed_in_horizon,
            minutes_left: (rate > 0.0).then(|| available as f64 / rate),
            shortfall: batch_remaining.saturating_sub(available),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarm_when_the_horizon_needs_more_than_the_pool_has() {
        let f = Forecast {
            low_water_minutes: 10.0,
        };
        // 200/min for 10 min = 2000 needed, batch needs 5000 more, pool has 1500.
        let l = f.assess(1500, 5000, 200.0);
        assert!(l.alarm);
        assert_eq!((l.needed_in_horizon, l.shortfall), (2000, 3500));
        assert_eq!(l.minutes_left, Some(7.5));
        // Pool of 2500 covers the horizon but not the batch: no alarm yet, shortfall shown.
        let l = f.assess(2500, 5000, 200.0);
        assert!(!l.alarm);
        assert_eq!(l.shortfall, 2500);
        // The batch is nearly done: it needs only 100, the pool has 150.
        let l = f.assess(150, 100, 200.0);
        assert!(!l.alarm);
        assert_eq!((l.needed_in_horizon, l.shortfall), (100, 0));
    }

    #[test]
    fn a_stopped_line_raises_no_alarm() {
        let l = Forecast::default().assess(0, 1000, 0.0);
        assert!(!l.alarm);
        assert_eq!(l.minutes_left, None);
        assert_eq!(l.shortfall, 1000);
        assert!(!Forecast::default().assess(10, 10, f64::NAN).alarm);
    }
}
