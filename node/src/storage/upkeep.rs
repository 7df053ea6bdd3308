//! Store upkeep run by the node: event retention on a schedule, and
//! closing the database when the node stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use amoskys_sensors::now_ns;
use tokio::sync::watch;

use super::Store;

/// How often age retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Deletes events older than `keep` and beyond `max_bytes` every minute
/// until `shutdown`.
pub async fn retention(
    store: Arc<Store>,
    keep: Duration,
    max_bytes: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(RETENTION_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let cutoff = now_ns().saturating_sub(u64::try_from(keep.as_nanos()).unwrap_or(u64::MAX));
        let store = store.clone();
        let result = tokio::task::spawn_blocking(move || {
            store.delete_events_before(cutoff)?;
            store.enforce_events_size(max_bytes)
        })
        .await;
        match result {
            Ok(Ok(Some(cutoff_ns))) => {
                tracing::info!(
                    cutoff_ns,
                    max_bytes,
                    "event store over its size limit; oldest events deleted"
                )
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "event retention failed"),
            Err(e) => tracing::warn!(error = %e, "event retention task failed"),
        }
    }
}

/// Drops the node's last handle on the database once every other holder
/// (a blocking task still reading it) has let go, waiting at most `wait`;
/// RocksDB then closes and frees its lock file.
pub async fn close(mut store: Arc<Store>, wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        match Arc::try_unwrap(store) {
            Ok(closed) => {
                drop(closed);
                return;
            }
            Err(held) if Instant::now() < deadline => {
                store = held;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                tracing::warn!("database still in use after shutdown; closes with its last user");
                return;
            }
        }
    }
}
