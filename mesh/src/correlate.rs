//! Cross-site correlation: when `k` different nodes report the same
//! technique against the same subject within a window, that is one
//! campaign, announced once.
//!
//! Every node sees every alert, so every node could announce it. To have one
//! announcement, the reports are put in a fixed order (time, then id); the
//! first `k` from distinct origins make the campaign, and only the origin
//! of the `k`-th announces it, once the `k`-th is `settle` old, so that
//! reports still in flight have arrived and every node sees the same first
//! `k`. A report delayed longer than `settle` (a partition) can still cause
//! a second announcement; its `references` tie the two together. Pure
//! logic: time is passed in.

use std::collections::{BTreeMap, HashMap};

use crate::alert::Alert;

/// Rule name of campaign alerts (never correlated again).
pub const CAMPAIGN_RULE: &str = "campaign";
/// (technique, subject) pairs tracked; the stalest is dropped beyond this.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Report {
    time_ns: u64,
    id: String,
    origin: String,
    severity: String,
    category: String,
}

/// A campaign this node is to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub technique: String,
    pub subject: String,
    pub category: String,
    /// The highest severity among the reports.
    pub severity: String,
    /// Time of the `k`-th report.
    pub time_ns: u64,
    /// Time of the first report.
    pub start_ns: u64,
    /// `(origin, alert id)` of the `k` reports, in order.
    pub references: Vec<(String, String)>,
}

/// Tracks reports per (technique, subject).
#[derive(Debug)]
pub struct Correlator {
    k: usize,
    window_ns: u64,
    settle_ns: u64,
    reports: HashMap<(String, String), Vec<Report>>,
    /// Campaign start times already announced, per key.
    announced: HashMap<(String, String), u64>,
}

fn severity_rank(s: &str) -> usize {
    crate::alert::SEVERITIES
        .iter()
        .position(|x| *x == s)
        .unwrap_or(0)
}

impl Correlator {
    pub fn new(k: usize, window_ns: u64, settle_ns: u64) -> Self {
        Self {
            k: k.max(2),
            window_ns: window_ns.max(1),
            settle_ns,
            reports: HashMap::new(),
            announced: HashMap::new(),
        }
    }

    /// Changes k and the window (a new policy); reports already held
    /// stay.
    pub fn set_threshold(&mut self, k: usize, window_ns: u64) {
        self.k = k.max(2);
        self.window_ns = window_ns.max(1);
    }

    /// Records a report.
    pub fn observe(&mut self, alert: &Alert) {
        let b = &alert.body;
        if b.rule == CAMPAIGN_RULE || b.technique.is_empty() {
            return;
        }
        let key = (b.technique.clone(), b.subject.clone());
        if !self.reports.contains_key(&key) && self.reports.len() >= MAX_KEYS {
            self.drop_stalest();
        }
        let list = self.reports.entry(key).or_default();
        if list.iter().any(|r| r.id == alert.id) {
            return;
        }
        list.push(Report {
            time_ns: b.time_ns,
            id: alert.id.clone(),
            origin: alert.origin.clone(),
            severity: b.severity.clone(),
            category: b.category.clone(),
        });
        list.sort_by(|x, y| (x.time_ns, &x.id).cmp(&(y.time_ns, &y.id)));
        let newest = list.last().map_or(0, |r| r.time_ns);
        let horizon = newest.saturating_sub(self.window_ns);
        list.retain(|r| r.time_ns >= horizon);
    }

    /// The campaigns this node (`me`, a peer id) is to announce at `now_ns`.
    pub fn ready(&mut self, me: &str, now_ns: u64) -> Vec<Campaign> {
        let mut out = Vec::new();
        for (key, list) in &self.reports {
            if let Some(c) = self.campaign(key, list, me, now_ns) {
                out.push(c);
            }
        }
        for c in &out {
            let start = c.start_ns;
            self.announced
                .insert((c.technique.clone(), c.subject.clone()), start);
        }
        out
    }

    fn campaign(
        &self,
        key: &(String, String),
        list: &[Report],
        me: &str,
        now_ns: u64,
    ) -> Option<Campaign> {
        // The first k distinct origins, in order, within one window.
        let mut firsts: BTreeMap<&str, &Report> = BTreeMap::new();
        let mut chosen: Vec<&Report> = Vec::new();
        for r in list.iter() {
            if firsts.contains_key(r.origin.as_str()) {
                continue;
            }
            firsts.insert(&r.origin, r);
            chosen.push(r);
            if chosen.len() == self.k {
                break;
            }
        }
        if chosen.len() < self.k {
            return None;
        }
        let start = chosen[0].time_ns;
        let kth = chosen[self.k - 1];
        if kth.time_ns.saturating_sub(start) > self.window_ns
            || kth.origin != me
            || now_ns < kth.time_ns.saturating_add(self.settle_ns)
        {
            return None;
        }
        if self
            .announced
            .get(key)
            .is_some_and(|t| start < t.saturating_add(self.window_ns))
        {
            return None;
        }
        let campaign = Campaign {
            technique: key.0.clone(),
            subject: key.1.clone(),
            category: kth.category.clone(),
            severity: chosen
                .iter()
                .map(|r| r.severity.as_str())
                .max_by_key(|s| severity_rank(s))
                .unwrap_or("medium")
                .to_owned(),
            time_ns: kth.time_ns,
            start_ns: start,
            references: chosen
                .iter()
                .map(|r| (r.origin.clone(), r.id.clone()))
                .collect(),
        };
        Some(campaign)
    }

    fn drop_stalest(&mut self) {
        let stalest = self
            .reports
            .iter()
            .min_by_key(|(_, v)| v.last().map_or(0, |r| r.time_ns))
            .map(|(k, _)| k.clone());
        if let Some(k) = stalest {
            self.reports.remove(&k);
            self.announced.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertBody;
    use ed25519_dalek::SigningKey;

    const S: u64 = 1_000_000_000;

    fn report(seed: u8, seq: u64, t: u64, technique: &str) -> Alert {
        Alert::sign(
            AlertBody {
                seq,
                time_ns: t,
                severity: if seed == 2 { "high" } else { "medium" }.into(),
                category: "reconnaissance".into(),
                technique: technique.into(),
                rule: "port_scan_vertical".into(),
                score: 1.0,
                subject: "source_ip:h:0011223344556677".into(),
                evidence: vec![],
            },
            &SigningKey::from_bytes(&[seed; 32]),
        )
    }

    #[test]
    fn only_the_origin_of_the_kth_report_announces_and_only_once() {
        // Four sites see one scan within two seconds; b reports twice.
        let ms = 1_000_000;
        let a = report(1, 1, 100 * S, "T1046");
        let b = report(2, 1, 100 * S + 500 * ms, "T1046");
        let b_again = report(2, 2, 100 * S + 800 * ms, "T1046");
        let c = report(3, 1, 101 * S, "T1046");
        let d = report(4, 1, 101 * S + 500 * ms, "T1046");
        // Every node sees the same reports, in different arrival orders.
        let orders = [
            vec![&a, &b, &b_again, &c, &d],
            vec![&d, &c, &b_again, &b, &a],
            vec![&c, &a, &d, &b, &b_again],
        ];
        for order in orders {
            let mut announced = Vec::new();
            for me in [&a.origin, &b.origin, &c.origin, &d.origin] {
                let mut x = Correlator::new(3, 600 * S, 5 * S);
                let mut newest = 0;
                for r in &order {
                    x.observe(r);
                    // Checked as each report arrives, a second after the
                    // newest was made: nothing has settled yet.
                    newest = newest.max(r.body.time_ns);
                    assert!(x.ready(me, newest + S).is_empty());
                }
                for c in x.ready(me, 1_000 * S) {
                    announced.push((me.clone(), c));
                }
                assert!(x.ready(me, 2_000 * S).is_empty(), "once");
            }
            assert_eq!(announced.len(), 1, "{announced:?}");
            let (who, campaign) = &announced[0];
            assert_eq!(who, &c.origin, "the third distinct origin in time order");
            assert_eq!(campaign.severity, "high");
            let refs: Vec<&str> = campaign.references.iter().map(|r| r.1.as_str()).collect();
            assert_eq!(refs, vec![a.id.as_str(), b.id.as_str(), c.id.as_str()]);
        }
    }

    #[test]
    fn reports_apart_by_more_than_the_window_or_of_other_techniques_do_not_add_up() {
        let mut x = Correlator::new(3, 60 * S, 0);
        let c = report(3, 1, 1_000 * S, "T1046");
        let mut campaign = report(5, 1, 1_001 * S, "T1046");
        campaign.body.rule = CAMPAIGN_RULE.into();
        for r in [
            &report(1, 1, 100 * S, "T1046"),
            &report(2, 1, 130 * S, "T1110"),
            &report(2, 2, 500 * S, "T1046"),
            &c,
            &campaign,
        ] {
            x.observe(r);
            assert!(x.ready(&c.origin, 10_000 * S).is_empty());
        }
    }
}
