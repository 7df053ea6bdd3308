//! Events per second of each sensor for the overview: the change of its
//! event count since the previous sample (the previous look at the page,
//! by any browser, at least a second earlier). Time is an input.

use std::collections::HashMap;

/// Sensors whose samples are kept; a node runs a handful.
const MAX_SENSORS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ms: u64,
    events: u64,
    rate: Option<f64>,
}

/// The last sample of each sensor.
#[derive(Debug, Default)]
pub struct Rates {
    samples: HashMap<String, Sample>,
}

impl Rates {
    /// Records `events` of sensor `name` at `now_ms`; the rate over the
    /// last second or more, once two samples are that far apart.
    pub fn rate(&mut self, name: &str, events: u64, now_ms: u64) -> Option<f64> {
        match self.samples.get_mut(name) {
            Some(s) if now_ms >= s.at_ms + 1_000 => {
                let secs = (now_ms - s.at_ms) as f64 / 1_000.0;
                s.rate = Some(events.saturating_sub(s.events) as f64 / secs);
                s.at_ms = now_ms;
                s.events = events;
                s.rate
            }
            Some(s) => s.rate,
            None => {
                if self.samples.len() < MAX_SENSORS {
                    let s = Sample {
                        at_ms: now_ms,
                        events,
                        rate: None,
                    };
                    self.samples.insert(name.to_owned(), s);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_change_since_the_last_sample_a_second_ago() {
        let mut r = Rates::default();
        assert_eq!(r.rate("procfs", 100, 0), None);
        assert_eq!(r.rate("procfs", 150, 500), None, "under a second");
        assert_eq!(r.rate("procfs", 300, 2_000), Some(100.0));
        assert_eq!(r.rate("procfs", 310, 2_100), Some(100.0), "kept");
        assert_eq!(r.rate("procfs", 310, 4_000), Some(5.0));
        assert_eq!(
            r.rate("procfs", 0, 5_000),
            Some(0.0),
            "a restart counts none"
        );
    }
}
