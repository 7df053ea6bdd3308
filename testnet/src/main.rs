//! `amoskys-testnet`: a namespace testnet of real nodes, driven across
//! invocations through its state directory.
//!
//! ```text
//! amoskys-testnet up N [--dir DIR] [--amoskys PATH]
//! amoskys-testnet partition 0,1 2,3,4 [--dir DIR]
//! amoskys-testnet heal | kill I | restart I | loss I PERCENT | status | down
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use amoskys_testnet::{Options, Testnet};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "amoskys-testnet",
    version,
    about = "A testnet of real amoskys nodes in network namespaces (needs root)"
)]
struct Cli {
    /// State directory of the testnet (one testnet per directory).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/tmp/amoskys-testnet"
    )]
    dir: PathBuf,
    /// The amoskys binary the nodes run (default: the one built next to this
    /// command).
    #[arg(long, global = true, value_name = "PATH")]
    amoskys: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start N nodes, each in a network namespace of its own; prints each
    /// node's namespace, address and peer id.
    Up {
        /// Number of nodes.
        #[arg(value_name = "N")]
        nodes: usize,
    },
    #[command(flatten)]
    Running(Verb),
}

/// Verbs on a testnet that `up` started (read from its state directory).
#[derive(Debug, Subcommand)]
enum Verb {
    /// Drop traffic between two groups of nodes, e.g. `partition 0,1 2,3,4`.
    Partition {
        /// Node indices of one side, comma-separated.
        #[arg(value_name = "A", value_parser = group)]
        a: Group,
        /// Node indices of the other side, comma-separated.
        #[arg(value_name = "B", value_parser = group)]
        b: Group,
    },
    /// Remove every partition and packet loss.
    Heal,
    /// Kill node I (SIGKILL).
    Kill {
        #[arg(value_name = "I")]
        index: usize,
    },
    /// Kill node I and start it again with the same data.
    Restart {
        #[arg(value_name = "I")]
        index: usize,
    },
    /// Drop PERCENT of node I's incoming packets at random.
    Loss {
        #[arg(value_name = "I")]
        index: usize,
        #[arg(value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
    },
    /// Print the testnet's state as JSON.
    Status,
    /// Kill every process and delete every namespace of the testnet.
    Down,
}

/// Node indices of one side of a partition.
#[derive(Debug, Clone)]
struct Group(Vec<usize>);

fn group(s: &str) -> Result<Group, String> {
    s.split(',')
        .map(|x| x.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map(Group)
        .map_err(|_| format!("{s:?} is not a list of node indices such as 0,1,2"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amoskys-testnet: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let dir = cli.dir;
    let verb = match cli.command {
        Command::Up { nodes } => {
            let amoskys = cli.amoskys.unwrap_or_else(amoskys_testnet::built_amoskys);
            let mut t = Testnet::up(&Options {
                nodes,
                amoskys,
                dir,
                sets: Vec::new(),
            })
            .map_err(|e| e.to_string())?;
            // The testnet outlives this command; `down` removes it.
            t.owned = false;
            for h in &t.hosts {
                println!("{}  {}  {}", h.ns, h.addr, h.peer_id);
            }
            return Ok(());
        }
        Command::Running(verb) => verb,
    };
    let mut t = Testnet::load(&dir).map_err(|e| e.to_string())?;
    let nodes = t.hosts.len();
    let node = |i: usize| {
        if i < nodes {
            Ok(i)
        } else {
            Err(format!(
                "no node {i}: the testnet in {} has nodes 0 to {}",
                dir.display(),
                nodes.saturating_sub(1)
            ))
        }
    };
    let result = match verb {
        Verb::Down => {
            t.down();
            let _ = std::fs::remove_file(dir.join("state.json"));
            Ok(())
        }
        Verb::Status => {
            println!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
            Ok(())
        }
        Verb::Heal => t.heal(),
        Verb::Partition { a, b } => {
            for &i in a.0.iter().chain(&b.0) {
                node(i)?;
            }
            t.partition(&a.0, &b.0)
        }
        Verb::Kill { index } => t.kill(node(index)?),
        Verb::Restart { index } => {
            let i = node(index)?;
            t.kill(i).and_then(|()| t.start_node(i, &[]))
        }
        Verb::Loss { index, percent } => t.loss(node(index)?, percent),
    };
    result.map_err(|e| e.to_string())
}
