//! How a round ends, whatever its kind (a model or a head): the
//! aggregator waits for the updates or the deadline, then commits through
//! Raft either the combined model or the round's abandonment.

use std::collections::HashMap;
use std::sync::Mutex;

use amoskys_consensus::{Command, NewModel, RoundRecord};
use amoskys_learning::federated::round::{Closed, Collector};

use super::{CLOSE_CHECK, Federation, lock, now_ns};

impl Federation {
    /// Waits until every expected update of `round` is in `pool`, or its
    /// deadline passes; then ends the round through Raft: the updates
    /// `combine`d into a model to register, or the round abandoned with the
    /// reason. `what` names the round's kind in the log.
    pub(super) async fn close_round<U>(
        &self,
        pool: &Mutex<HashMap<u64, Collector<U>>>,
        round: &RoundRecord,
        what: &str,
        combine: impl AsyncFnOnce(Vec<(String, U)>, Vec<String>) -> Result<NewModel, String>,
    ) {
        loop {
            let done = lock(pool).get(&round.id).is_none_or(|c| c.all_in())
                || now_ns() > round.round.deadline_ns;
            if done {
                break;
            }
            tokio::time::sleep(CLOSE_CHECK).await;
        }
        let Some(mut c) = lock(pool).remove(&round.id) else {
            return;
        };
        let reason = match c.close() {
            Closed::Abandoned { reason, .. } => {
                tracing::warn!(round = round.id, what, %reason, "round abandoned");
                reason
            }
            Closed::Complete { updates, missing } => match combine(updates, missing).await {
                Ok(model) => {
                    return self
                        .end_round(round, what, Command::RegisterModel(model))
                        .await;
                }
                Err(reason) => {
                    tracing::error!(round = round.id, what, %reason, "cannot combine the round");
                    reason
                }
            },
        };
        let abandon = Command::AbandonRound {
            id: round.id,
            reason,
            time_ns: now_ns(),
        };
        self.end_round(round, what, abandon).await;
    }

    async fn end_round(&self, round: &RoundRecord, what: &str, command: Command) {
        if let Err(e) = self.cluster.propose(command).await {
            tracing::error!(round = round.id, what, error = %e, "cannot commit the round's end");
        }
    }
}
