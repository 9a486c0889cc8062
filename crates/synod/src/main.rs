//! The `synod` command line. It parses arguments, reads and writes files and
//! prints; every protocol step lives in the libraries (`synod-he`,
//! `synod-circuit`, `synod-local`, `synod-tee`).

mod demo;
#[cfg(feature = "insecure-sim")]
mod enclave;

use clap::{Parser, Subcommand};

/// mimalloc keeps freed pages for reuse instead of handing them back to the
/// kernel after every step (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// The enclave boundary: `serve` runs a simulated enclave process (NO
    /// hardware protection), `attest` prints an enclave's verified claims.
    #[cfg(feature = "insecure-sim")]
    Enclave(enclave::EnclaveArgs),
}

fn main() -> std::process::ExitCode {
    // The main thread works in rayon's pool: each step's parallel sections
    // start here instead of waking a pool thread (`synod_he::join_global_pool`).
    synod_he::join_global_pool();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        #[cfg(feature = "insecure-sim")]
        Command::Enclave(args) => enclave::run(args),
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
