//! A client history of one register (the replicated policy) and a
//! linearizability check of it, in the manner of Wing & Gong with the
//! memoisation of Lowe and Porcupine: search for an order of the calls that
//! respects real time and the register's semantics.
//!
//! A write that failed or timed out may still have taken effect: it is
//! *pending*, with no end, and the search may place it anywhere after its
//! start or leave it out.

use std::collections::HashSet;

use serde::Serialize;

/// What a client asked and, for a read, what it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    /// Sets the register to a value no other write uses.
    Write(u64),
    /// Saw this value (`None`: the register as it was before the history).
    Read(Option<u64>),
}

/// One call: its client, operation and times (ns since the run began).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Call {
    pub client: usize,
    pub op: Op,
    pub start: u64,
    /// `None`: no answer (failed or timed out), so it may or may not have
    /// happened. Reads without an answer are not recorded at all.
    pub end: Option<u64>,
}

/// Why a history is not linearizable: the calls no order could explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The longest prefix of an order the search found.
    pub explained: usize,
    pub calls: usize,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no linearization: at most {} of {} calls could be ordered",
            self.explained, self.calls
        )
    }
}

/// Bounds the search so a pathological history cannot hang a run.
const MAX_STEPS: usize = 2_000_000;

/// Checks `calls` against a register that starts as `None`.
pub fn check(calls: &[Call]) -> Result<(), Violation> {
    let mut search = Search {
        calls,
        seen: HashSet::new(),
        best: 0,
        steps: 0,
    };
    let mut done = vec![false; calls.len()];
    if search.run(&mut done, None, 0) {
        Ok(())
    } else {
        Err(Violation {
            explained: search.best,
            calls: calls.len(),
        })
    }
}

struct Search<'a> {
    calls: &'a [Call],
    /// (calls placed, register value) already shown to lead nowhere.
    seen: HashSet<(Vec<bool>, Option<u64>)>,
    best: usize,
    steps: usize,
}

impl Search<'_> {
    fn run(&mut self, done: &mut Vec<bool>, value: Option<u64>, placed: usize) -> bool {
        self.best = self.best.max(placed);
        self.steps += 1;
        let open = || self.calls.iter().zip(done.iter()).filter(|(_, d)| !**d);
        // Finished once every answered call is placed.
        if open().all(|(c, _)| c.end.is_none()) {
            return true;
        }
        if self.steps > MAX_STEPS || self.seen.contains(&(done.clone(), value)) {
            return false;
        }
        // A call can go next if it started before every open call ended.
        let horizon = open().filter_map(|(c, _)| c.end).min().unwrap_or(u64::MAX);
        for i in 0..self.calls.len() {
            let c = self.calls[i];
            if done[i] || c.start > horizon {
                continue;
            }
            let next = match c.op {
                Op::Write(v) => Some(v),
                Op::Read(seen) if seen == value => value,
                Op::Read(_) => continue,
            };
            done[i] = true;
            if self.run(done, next, placed + 1) {
                return true;
            }
            done[i] = false;
        }
        self.seen.insert((done.clone(), value));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(client: usize, op: Op, start: u64, end: Option<u64>) -> Call {
        Call {
            client,
            op,
            start,
            end,
        }
    }

    #[test]
    fn sequential_reads_see_the_last_write() {
        let h = [
            call(0, Op::Read(None), 0, Some(1)),
            call(0, Op::Write(1), 2, Some(3)),
            call(1, Op::Read(Some(1)), 4, Some(5)),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn a_stale_read_after_a_finished_write_is_caught() {
        let h = [
            call(0, Op::Write(1), 0, Some(1)),
            call(0, Op::Write(2), 2, Some(3)),
            call(1, Op::Read(Some(1)), 4, Some(5)),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn concurrent_calls_may_take_either_order() {
        // The read overlaps both writes: it may see either.
        let h = [
            call(0, Op::Write(1), 0, Some(10)),
            call(1, Op::Write(2), 1, Some(9)),
            call(2, Op::Read(Some(1)), 2, Some(8)),
            call(2, Op::Read(Some(1)), 11, Some(12)),
        ];
        assert_eq!(check(&h), Ok(()));
        // But two later reads cannot go back and forth.
        let h = [
            call(0, Op::Write(1), 0, Some(10)),
            call(1, Op::Write(2), 1, Some(9)),
            call(2, Op::Read(Some(1)), 11, Some(12)),
            call(2, Op::Read(Some(2)), 13, Some(14)),
            call(2, Op::Read(Some(1)), 15, Some(16)),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn a_pending_write_may_land_late_or_never() {
        let late = [
            call(0, Op::Write(1), 0, None),
            call(1, Op::Read(None), 5, Some(6)),
            call(1, Op::Read(Some(1)), 100, Some(101)),
        ];
        assert_eq!(check(&late), Ok(()));
        let never = [
            call(0, Op::Write(1), 0, None),
            call(1, Op::Read(None), 100, Some(101)),
        ];
        assert_eq!(check(&never), Ok(()));
        // A value no write wrote is never explained.
        let invented = [call(1, Op::Read(Some(7)), 0, Some(1))];
        assert!(check(&invented).is_err());
    }

    #[test]
    fn a_long_concurrent_history_is_checked_quickly() {
        // Four clients, 200 calls, heavy overlap, all consistent.
        let mut h = Vec::new();
        let mut t = 0;
        for k in 0..50u64 {
            h.push(call(0, Op::Write(k + 1), t, Some(t + 30)));
            for c in 1..4 {
                h.push(call(c, Op::Read(Some(k + 1)), t + 31, Some(t + 40)));
            }
            t += 41;
        }
        let started = std::time::Instant::now();
        assert_eq!(check(&h), Ok(()));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
