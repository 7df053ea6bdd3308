//! How a round ends, whatever its kind (a model or a head): the
//! aggregator waits for the updates or the deadline, then commits through
//! Raft either the combined model or the round's abandonment.

use std::collections::HashMap;
use std::sync::Mutex;

use amoskys_consensus::{Command, NewModel, Outcome, RoundRecord};
use amoskys_learning::federated::round::{Closed, Collector};

use super::{CLOSE_CHECK, Federation, RoundEnd, lock, now_ns};

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

    /// Commits the round's end and counts how it ended.
    async fn end_round(&self, round: &RoundRecord, what: &str, command: Command) {
        let registers = matches!(command, Command::RegisterModel(_));
        let end = match self.cluster.propose(command).await {
            Ok((_, Outcome::Rejected(reason))) => {
                tracing::warn!(round = round.id, what, %reason, "the round's end was refused");
                RoundEnd::Rejected
            }
            Ok(_) if registers => RoundEnd::Committed,
            Ok(_) => RoundEnd::Abandoned,
            Err(e) => {
                tracing::error!(round = round.id, what, error = %e, "cannot commit the round's end");
                RoundEnd::Failed
            }
        };
        self.stats.round_ended(what, end);
    }
}
