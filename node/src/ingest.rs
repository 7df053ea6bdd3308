//! The event writer: the single consumer of the sensors' bounded channel and
//! the single writer of the `events` column family. Detection runs right
//! after each batch is stored, on the same thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use amoskys_sensors::{Event, now_ns};
use tokio::sync::mpsc;

use crate::detect::Detector;
use crate::metrics::Metrics;
use crate::storage::Store;

/// Most events written in one batch.
pub const MAX_BATCH: usize = 4096;

/// Starts the writer thread. It drains the channel in batches (whatever is
/// queued, up to [`MAX_BATCH`]) and ends once every sender is dropped and the
/// channel is empty, so a graceful shutdown loses nothing that was queued.
pub fn spawn_writer(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Event>,
    mut detector: Option<Detector>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("amoskys-store".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(ev) => batch.push(ev),
                        Err(_) => break,
                    }
                }
                let started = Instant::now();
                match store.put_events(&batch) {
                    Ok(_) => {
                        metrics.store_events.inc_by(batch.len() as u64);
                        if let Some(d) = detector.as_mut() {
                            match d.process(&store, &batch) {
                                Ok(alerts) => metrics.alerts_raised.inc_by(alerts.len() as u64),
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot store alerts");
                                    0
                                }
                            };
                        }
                    }
                    Err(e) => {
                        metrics.store_write_errors.inc();
                        tracing::error!(error = %e, events = batch.len(), "cannot write events");
                    }
                }
                metrics
                    .store_batch_seconds
                    .observe(started.elapsed().as_secs_f64());
                // Lag: from observation to durable write, newest event per sensor.
                let now = now_ns();
                let mut newest: HashMap<&str, u64> = HashMap::new();
                for ev in &batch {
                    newest.insert(ev.sensor.as_str(), now.saturating_sub(ev.time_ns));
                }
                for (sensor, ns) in newest {
                    metrics.set_sensor_lag(sensor, ns as f64 / 1e9);
                }
                batch.clear();
            }
        })
}
