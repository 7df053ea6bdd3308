//! Command-line interface of `amoskys` (clap lives only here).

mod alerts;
mod audit;
mod client;
mod cluster;
mod decisions;
mod eval;
mod key;
mod learn;
mod models;
mod operator;
mod proposals;
mod review;
mod rules;
mod show;
mod status;
mod tls;
mod verify;
mod workspace;

use eval::EvalCommand;

use std::path::PathBuf;
use std::process::ExitCode;

use amoskys_node::config::{ConfigError, Source};
use amoskys_node::identity::{Identity, KEY_FILE};
use amoskys_node::{Config, Node, telemetry};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "amoskys",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("AMOSKYS_GIT_COMMIT"), ")"),
    about = "AMOSKYS security-sensor mesh node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node (embedded defaults apply when no --config is given).
    Run(RunArgs),
    /// Write a new node key.
    Keygen(KeygenArgs),
    /// Rotate the node key of a cluster member (`key rotate`).
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Show a running node's status from its API.
    Status(StatusArgs),
    /// Check or show configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Follow, export or verify signed alerts.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// List, retrain or activate anomaly models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Form a cluster or show its state.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// List, admit or remove cluster members.
    #[command(subcommand)]
    Members(cluster::MembersCommand),
    /// Show, set or list the replicated policy.
    #[command(subcommand)]
    Policy(cluster::PolicyCommand),
    /// Changes waiting for admins of several nodes (`policy approve ID`).
    #[command(subcommand)]
    Proposals(proposals::ProposalsCommand),
    /// Sigma rules in the policy: list, add, remove; test a file on events.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Start federated rounds and list them.
    #[command(subcommand)]
    Learn(learn::LearnCommand),
    /// Add, remove or list shared threat intel (IOCs).
    #[command(subcommand)]
    Intel(workspace::IntelCommand),
    /// Acknowledge, annotate or show the case of an alert.
    #[command(subcommand)]
    Case(workspace::CaseCommand),
    /// Response decisions every node enforces: list, add, remove.
    #[command(subcommand)]
    Decisions(decisions::DecisionsCommand),
    /// Operator keys, and the cluster's operators and their roles.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Send one signed API request and print the answer (for scripts).
    Api(operator::RawArgs),
    /// The audit trail: who did what, on every node; verify an export.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Measure detection on real labelled data.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `amoskys man > amoskys.1`.
    Man,
}

/// Options that select and override configuration.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// TOML file with the keys to change from the defaults.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (node.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// API address (api.listen).
    #[arg(long, value_name = "IP:PORT")]
    api_listen: Option<String>,
    /// Log format, text or json (log.format).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log filter (log.level).
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Any key: --set sensors.procfs.interval_ms=500 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

impl ConfigArgs {
    fn load(&self) -> Result<Config, ConfigError> {
        let mut sets = self.sets.clone();
        let flags = [
            (
                "node.data_dir",
                self.data_dir.as_ref().map(|p| p.display().to_string()),
            ),
            ("api.listen", self.api_listen.clone()),
            ("log.format", self.log_format.clone()),
            ("log.level", self.log_level.clone()),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                sets.push(format!("{key}={v}"));
            }
        }
        Config::load_for_run(self.config.as_deref(), &sets)
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// Where to write the key (default: node.key in the data directory).
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace an existing key: the node gets a new identity.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// API address of the node (default: api.listen of the configuration).
    #[arg(long, value_name = "IP:PORT")]
    api: Option<String>,
    /// Operator key to sign requests with (PKCS#8 PEM); default: the
    /// node's local admin credential, when the node is on this host.
    #[arg(long = "key", value_name = "FILE", env = "AMOSKYS_OPERATOR_KEY")]
    key: Option<PathBuf>,
    #[command(flatten)]
    tls: tls::TlsArgs,
    /// Print the raw JSON of /api/v1/node.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a file (over the defaults) and list every problem.
    Check {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Print the effective configuration (defaults, file, environment, flags).
    Show(ConfigArgs),
    /// Print the embedded default configuration, with comments.
    Default,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Keygen(args) => keygen(args),
        Command::Key(cmd) => key::run(cmd),
        Command::Status(args) => status(args),
        Command::Config(cmd) => config(cmd),
        Command::Alerts(cmd) => alerts::run(cmd),
        Command::Models(cmd) => models::run(cmd),
        Command::Cluster(cmd) => cluster::cluster(cmd),
        Command::Members(cmd) => cluster::members(cmd),
        Command::Policy(cmd) => cluster::policy(cmd),
        Command::Proposals(cmd) => proposals::run(cmd),
        Command::Rules(cmd) => rules::run(cmd),
        Command::Learn(cmd) => learn::learn(cmd),
        Command::Intel(cmd) => workspace::intel(cmd),
        Command::Case(cmd) => workspace::case(cmd),
        Command::Decisions(cmd) => decisions::run(cmd),
        Command::Audit(cmd) => audit::audit(cmd),
        Command::Operator(cmd) => operator::operator(cmd),
        Command::Api(args) => operator::raw(args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "amoskys", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("amoskys: cannot write the manual page: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Eval(cmd) => eval::run(cmd),
    }
}

fn load_or_report(args: &ConfigArgs) -> Option<Config> {
    match args.load() {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("amoskys: {e}");
            None
        }
    }
}

/// How long a restarting node waits for its database to be released.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn run(args: RunArgs) -> ExitCode {
    let Some(config) = load_or_report(&args.config) else {
        return ExitCode::from(2);
    };
    let problems = config.validate();
    if !problems.is_empty() {
        eprintln!("amoskys: refusing to start, invalid configuration:");
        for p in problems {
            eprintln!("  {p}");
        }
        return ExitCode::from(2);
    }
    if let Ok(format) = config.log_format() {
        telemetry::init(format, &config.log.level);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("amoskys: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // When the node last stopped to restart: the stopped node's last
        // tasks may hold the database for a moment.
        let mut restarting: Option<std::time::Instant> = None;
        loop {
            match Node::start(config.clone()).await {
                Ok(node) => {
                    // A restart (a node key hand-over) starts it again in
                    // this process.
                    if !node.run_until_signal_or_restart().await {
                        return ExitCode::SUCCESS;
                    }
                    restarting = Some(std::time::Instant::now());
                }
                Err(amoskys_node::NodeError::Storage(
                    amoskys_node::storage::StorageError::Locked { .. },
                )) if restarting.is_some_and(|t| t.elapsed() < RESTART_WAIT) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "node failed to start");
                    eprintln!("amoskys: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    })
}

fn keygen(args: KeygenArgs) -> ExitCode {
    let path = match args.out {
        Some(p) => p,
        None => match load_or_report(&args.config) {
            Some(c) => c.data_dir().join(KEY_FILE),
            None => return ExitCode::from(2),
        },
    };
    let identity = Identity::generate();
    match identity.write(&path, args.force) {
        Ok(()) => {
            println!("wrote {}", path.display());
            println!("peer id     {}", identity.peer_id());
            println!("public key  {}", identity.public_key_hex());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("amoskys: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(args: StatusArgs) -> ExitCode {
    let (api, tls) = match args.api {
        Some(a) => (a, args.tls),
        None => match load_or_report(&args.config) {
            Some(c) => tls::for_config(&c, args.tls),
            None => return ExitCode::from(client::exit::USAGE),
        },
    };
    client::run(status::show(
        client::Api::new(&api, args.key).with_tls(&tls),
        args.json,
    ))
}

fn config(cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Check { file } => {
            let loaded = Config::load(&[Source::Embedded, Source::File(file.clone())]);
            let problems = match loaded {
                Ok(c) => c.validate(),
                Err(ConfigError::Invalid(p)) => p,
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            if problems.is_empty() {
                println!("{}: ok", file.display());
                return ExitCode::SUCCESS;
            }
            println!("{}: {} problem(s)", file.display(), problems.len());
            for p in problems {
                println!("  {p}");
            }
            ExitCode::from(2)
        }
        ConfigCommand::Show(args) => match load_or_report(&args) {
            Some(c) => {
                print!("{}", c.to_toml());
                ExitCode::SUCCESS
            }
            None => ExitCode::from(2),
        },
        ConfigCommand::Default => {
            print!("{}", amoskys_node::config::DEFAULT_TOML);
            ExitCode::SUCCESS
        }
    }
}

/// Where evaluation data is cached by default.
fn data_cache() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache/amoskys/data")
}
