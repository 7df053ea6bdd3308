//! The `amoskys` command: parses arguments and calls into the node library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
