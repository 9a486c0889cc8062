//! The `synod` command line. It parses arguments, reads and writes files and
//! prints; every protocol step lives in the libraries (`synod-he`,
//! `synod-circuit`, `synod-local`).

mod demo;

use clap::{Parser, Subcommand};

/// synod: computation on the combined private data of several organisations,
/// under threshold homomorphic encryption.
#[derive(Parser)]
#[command(name = "synod", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole session in one process: set-up, encrypted inputs,
    /// evaluation and threshold decryption by a random t of n participants.
    Demo(demo::DemoArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
