//! `synod enclave serve` and `synod enclave attest`, and the enclave processes
//! that `synod demo --enclave insecure-sim` starts (feature `insecure-sim`).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use synod_he::EvaluationPoint;
use synod_tee::sim::{serve_enclave, EnclaveClient, SimConfig};
use synod_tee::verify::verify_evidence;
use synod_tee::{Claims, Enclave, Policy, ReportDataInput, UnixTime};

/// Arguments of `synod enclave`.
#[derive(Args, Debug)]
pub struct EnclaveArgs {
    #[command(subcommand)]
    command: EnclaveCommand,
}

#[derive(Subcommand, Debug)]
enum EnclaveCommand {
    /// Run a simulated enclave process on a Unix socket. It gives NO hardware
    /// protection and refuses to start without --insecure-simulated.
    Serve(ServeArgs),
    /// Ask an enclave for evidence, verify it and print its claims.
    Attest(AttestArgs),
}

/// Arguments of `synod enclave serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The Unix socket to listen on (created with mode 0600).
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// Where the simulated platform seed lives (created if missing).
    #[arg(long, value_name = "DIR")]
    platform_dir: PathBuf,
    /// The enclave's security version.
    #[arg(long, default_value_t = 1)]
    svn: u32,
    /// Keep the key share sealed in this directory (created with mode 0700), so
    /// that a restarted enclave recovers it. Without it the share lives in
    /// memory only and is lost when the process exits.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Acknowledge that the simulated enclave protects nothing: root, your own
    /// user and anyone who can read the platform seed can read its keys and
    /// forge its reports.
    #[arg(long)]
    insecure_simulated: bool,
    /// A PKCS#11 module to wrap sealing keys with (feature `hsm`).
    #[cfg(feature = "hsm")]
    #[arg(long, value_name = "FILE", requires_all = ["hsm_token_label", "hsm_pin_file"])]
    hsm_module: Option<PathBuf>,
    /// The label of the PKCS#11 token (tokens are selected by label, not slot).
    #[cfg(feature = "hsm")]
    #[arg(long, value_name = "LABEL", requires = "hsm_module")]
    hsm_token_label: Option<String>,
    /// A file whose first line is the token's user PIN.
    #[cfg(feature = "hsm")]
    #[arg(long, value_name = "FILE", requires = "hsm_module")]
    hsm_pin_file: Option<PathBuf>,
}

/// Arguments of `synod enclave attest`.
#[derive(Args, Debug)]
pub struct AttestArgs {
    /// The enclave's Unix socket.
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// The 32-byte challenge, 64 hex digits (random if absent).
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
    /// The participant the enclave is expected to serve (bound in the report data).
    #[arg(long, default_value_t = 1)]
    participant: u32,
    /// The key epoch (bound in the report data).
    #[arg(long, default_value_t = 0)]
    epoch: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `synod enclave …`.
pub fn run(args: EnclaveArgs) -> Result<bool> {
    match args.command {
        EnclaveCommand::Serve(a) => serve(a),
        EnclaveCommand::Attest(a) => attest(a),
    }
}

fn serve(args: ServeArgs) -> Result<bool> {
    if !args.insecure_simulated {
        bail!(
            "refusing to start: the simulated enclave gives NO hardware protection (root, your \
             own user and anyone who can read the platform seed can read its keys and forge its \
             reports). Pass --insecure-simulated to run it anyway, for development only."
        );
    }
    #[cfg(feature = "hsm")]
    let hsm = match args.hsm_module {
        Some(module) => {
            let (Some(token_label), Some(pin_file)) = (args.hsm_token_label, args.hsm_pin_file)
            else {
                bail!("--hsm-module needs --hsm-token-label and --hsm-pin-file");
            };
            Some(synod_tee::sim::SimHsm {
                module,
                token_label,
                pin_file,
                key_label: synod_tee::sim::DEFAULT_HSM_KEY_LABEL.to_string(),
            })
        }
        None => None,
    };
    #[cfg(not(feature = "hsm"))]
    let hsm = None;
    let config = SimConfig {
        insecure_no_hardware_protection: true,
        platform_dir: args.platform_dir,
        svn: args.svn,
        allowed_uid: None,
        state_dir: args.state_dir,
        hsm,
    };
    serve_enclave(&args.socket, &config)
        .with_context(|| format!("enclave on {}", args.socket.display()))?;
    Ok(true)
}

fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

#[derive(Serialize)]
struct AttestReport {
    kind: String,
    hardware_protected: bool,
    measurement: String,
    signer: String,
    svn: u32,
    debug: bool,
    tcb_status: String,
    advisories: Vec<String>,
    report_data: String,
    verified_at: u64,
    binding: Binding,
    default_policy: String,
}

#[derive(Serialize)]
struct Binding {
    nonce: String,
    transport_key: String,
    participant: u32,
    epoch: u64,
    matches: bool,
}

fn attest(args: AttestArgs) -> Result<bool> {
    let nonce: [u8; 32] = match &args.nonce {
        Some(h) => hex::decode(h.trim())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .with_context(|| format!("--nonce {h:?}: expected 64 hex digits"))?,
        None => rand::random(),
    };
    let mut client = EnclaveClient::connect(&args.socket)
        .with_context(|| format!("connecting to the enclave on {}", args.socket.display()))?;
    let transport_key = client.transport_key()?;
    let input = ReportDataInput {
        nonce,
        transport_key: transport_key.to_bytes(),
        participant: args.participant,
        epoch: args.epoch,
    };
    let expected = input.digest();
    let evidence = client.attest(&expected)?;
    drop(client);
    let claims = verify_evidence(&evidence, now()).context("the evidence does not verify")?;
    let matches = &claims.report_data == expected.as_bytes();
    let default_policy = match Policy::default().check(&claims, &expected) {
        Ok(()) => "accepted".to_string(),
        Err(v) => format!("refused: {v}"),
    };
    let binding = Binding {
        nonce: hex::encode(nonce),
        transport_key: hex::encode(transport_key.to_bytes()),
        participant: args.participant,
        epoch: args.epoch,
        matches,
    };
    if args.json {
        let report = AttestReport {
            kind: claims.kind.to_string(),
            hardware_protected: claims.hardware_protected,
            measurement: hex::encode(&claims.measurement),
            signer: hex::encode(&claims.signer),
            svn: claims.svn,
            debug: claims.debug,
            tcb_status: claims.tcb_status.to_string(),
            advisories: claims.advisories.clone(),
            report_data: hex::encode(claims.report_data),
            verified_at: claims.verified_at.0,
            binding,
            default_policy,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_claims(&claims, &binding, &default_policy);
    }
    Ok(matches)
}

fn print_claims(c: &Claims, b: &Binding, default_policy: &str) {
    let tty = std::io::stdout().is_terminal();
    let bold = |s: &str| {
        if tty {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    println!(
        "enclave evidence, verified at {} (unix seconds)",
        c.verified_at.0
    );
    println!("  kind:               {}", c.kind);
    if c.hardware_protected {
        println!("  hardware_protected: true");
    } else {
        println!(
            "  hardware_protected: {}",
            bold(
                "false — NO hardware protection: this host can read its keys and forge its reports"
            )
        );
    }
    println!("  measurement:        {}", hex::encode(&c.measurement));
    if !c.signer.is_empty() {
        println!("  signer:             {}", hex::encode(&c.signer));
    }
    println!("  svn:                {}", c.svn);
    println!(
        "  debug:              {}",
        if c.debug {
            "true (memory readable by the host)"
        } else {
            "false"
        }
    );
    println!("  tcb_status:         {}", c.tcb_status);
    if !c.advisories.is_empty() {
        println!("  advisories:         {}", c.advisories.join(", "));
    }
    println!("  report_data:        {}", hex::encode(c.report_data));
    println!(
        "  binding:            {} (nonce {}, transport key {}, participant {}, epoch {})",
        if b.matches {
            "matches this challenge".to_string()
        } else {
            bold("DOES NOT MATCH this challenge (replayed or substituted evidence)")
        },
        b.nonce,
        b.transport_key,
        b.participant,
        b.epoch
    );
    println!("  default policy:     {default_policy}");
}

/// The simulated enclave processes of one demo run: one child `synod enclave
/// serve` per participant, sockets in a private temporary directory. Dropping
/// it kills and waits for every child still running.
pub struct EnclaveProcesses {
    children: Vec<(EvaluationPoint, Child, PathBuf)>,
    dir: tempfile::TempDir,
}

impl EnclaveProcesses {
    /// Starts one enclave per point; `svn_of` gives each one's SVN.
    pub fn start(
        points: &[EvaluationPoint],
        svn_of: &dyn Fn(EvaluationPoint) -> u32,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("synod-enclaves-")
            .tempdir()
            .context("creating a directory for the enclave sockets")?;
        let exe = std::env::current_exe().context("locating the synod binary")?;
        let mut procs = Self {
            children: Vec::new(),
            dir,
        };
        for &p in points {
            procs.spawn(&exe, p, svn_of(p))?;
        }
        procs.wait_listening(Duration::from_secs(60))?;
        Ok(procs)
    }

    /// Starts one more enclave (a member joining at a resharing) and connects to it.
    pub fn add(
        &mut self,
        p: EvaluationPoint,
        svn: u32,
    ) -> Result<synod_local::enclave::BoxedEnclave> {
        let exe = std::env::current_exe().context("locating the synod binary")?;
        self.spawn(&exe, p, svn)?;
        self.wait_listening(Duration::from_secs(60))?;
        let socket = self.socket_path(p);
        let c = EnclaveClient::connect(&socket)
            .with_context(|| format!("connecting to {p}'s enclave"))?;
        Ok(Box::new(c))
    }

    /// How many enclave processes were started.
    pub fn count(&self) -> usize {
        self.children.len()
    }

    fn socket_path(&self, p: EvaluationPoint) -> PathBuf {
        self.dir.path().join(format!("p{}.sock", p.get()))
    }

    /// Starts `p`'s enclave; its key share is sealed in its own state directory.
    fn spawn(&mut self, exe: &std::path::Path, p: EvaluationPoint, svn: u32) -> Result<()> {
        let socket = self.socket_path(p);
        let log = std::fs::File::create(self.log_path(p))?;
        let child = Command::new(exe)
            .args(["enclave", "serve", "--insecure-simulated", "--socket"])
            .arg(&socket)
            .arg("--platform-dir")
            .arg(self.dir.path().join(format!("p{}-platform", p.get())))
            .arg("--state-dir")
            .arg(self.dir.path().join(format!("p{}-state", p.get())))
            .args(["--svn", &svn.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {p}'s enclave process"))?;
        self.children.push((p, child, socket));
        Ok(())
    }

    fn wait_listening(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        for (p, child, socket) in &mut self.children {
            while !socket.exists() {
                if let Some(status) = child.try_wait()? {
                    bail!("{p}'s enclave process exited ({status}) before listening");
                }
                if Instant::now() > deadline {
                    bail!(
                        "{p}'s enclave process did not listen within {} s",
                        limit.as_secs()
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }

    fn log_path(&self, p: EvaluationPoint) -> PathBuf {
        self.dir.path().join(format!("p{}.log", p.get()))
    }

    /// Connects a client to every enclave.
    pub fn connect(&self) -> Result<Vec<(EvaluationPoint, synod_local::enclave::BoxedEnclave)>> {
        self.children
            .iter()
            .map(|(p, _, socket)| {
                let c = EnclaveClient::connect(socket)
                    .with_context(|| format!("connecting to {p}'s enclave"))?;
                Ok((*p, Box::new(c) as synod_local::enclave::BoxedEnclave))
            })
            .collect()
    }

    /// Asks each enclave to shut down (after the committee's connections are
    /// closed) and waits for it; kills any that does not exit within 5 s.
    pub fn shutdown(mut self) -> Result<()> {
        for (p, child, socket) in &mut self.children {
            if let Ok(c) = EnclaveClient::connect(socket) {
                let _ = c.shutdown();
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if child.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    eprintln!("warning: {p}'s enclave process did not exit; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.children.clear();
        Ok(())
    }
}

impl Drop for EnclaveProcesses {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The measurement a simulated enclave of this binary has at `svn`.
pub fn expected_measurement(svn: u32) -> Result<Vec<u8>> {
    Ok(synod_tee::sim::measurement(&SimConfig {
        insecure_no_hardware_protection: true,
        platform_dir: PathBuf::new(),
        svn,
        allowed_uid: None,
        state_dir: None,
        hsm: None,
    })?)
}

/// The session policy of `synod demo --enclave insecure-sim`: simulated
/// evidence allowed (this run only), this binary's measurement at `svn`.
pub fn demo_policy(svn: u32) -> Result<synod_local::enclave::SessionPolicy> {
    Ok(synod_local::enclave::SessionPolicy {
        policy: Policy {
            allow_simulated: true,
            measurements: vec![expected_measurement(svn)?],
            min_svn: svn,
            ..Policy::default()
        },
        now: now(),
    })
}
