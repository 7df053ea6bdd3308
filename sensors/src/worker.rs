//! The thread a sensor runs on, and the channel that stops it.

use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::SensorError;

/// Receiving end of a stop signal: it disconnects (or receives) when the
/// sensor must stop, so `recv_timeout` doubles as the sensor's tick.
pub type StopSignal = mpsc::Receiver<()>;

/// A running sensor thread.
#[derive(Debug)]
pub struct Worker {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

impl Worker {
    /// Spawns `run` on a named thread with a stop signal. `stack_bytes` sets
    /// the stack size when the default is not enough.
    pub fn spawn(
        sensor: &'static str,
        stack_bytes: Option<usize>,
        run: impl FnOnce(StopSignal) + Send + 'static,
    ) -> Result<Worker, SensorError> {
        let (stop, signal) = mpsc::channel();
        let mut builder = std::thread::Builder::new().name(format!("amoskys-{sensor}"));
        if let Some(bytes) = stack_bytes {
            builder = builder.stack_size(bytes);
        }
        let handle = builder
            .spawn(move || run(signal))
            .map_err(|source| SensorError::Io {
                sensor,
                context: "cannot spawn thread".into(),
                source,
            })?;
        Ok(Worker { stop, handle })
    }

    /// Signals the thread to stop and waits for it.
    pub fn stop(self, sensor: &'static str) {
        drop(self.stop);
        if self.handle.join().is_err() {
            tracing::error!(sensor, "sensor thread panicked");
        }
    }
}
