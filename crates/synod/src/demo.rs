//! `synod demo`: a whole session with simulated participants in one process.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use synod_circuit::{CircuitSpec, ColumnRef, Plan};
use synod_he::EvaluationPoint;
use synod_local::LocalCommittee;

/// Arguments of `synod demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of participants n.
    #[arg(long, default_value_t = 5)]
    parties: usize,
    /// Threshold t: any t participants can decrypt, t−1 cannot.
    #[arg(long, default_value_t = 3)]
    threshold: usize,
    /// Rows per generated column.
    #[arg(long, default_value_t = 8192)]
    rows: usize,
    /// Seed for generated data, keys and the choice of decryptors
    /// (random if absent).
    #[arg(long)]
    seed: Option<u64>,
    /// Write each party's input as `DIR/<party>.csv` (header row, one record per row).
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// A circuit description (TOML or JSON) to run instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// A party's input: PARTY=FILE.csv (repeatable). Parties without one get
    /// generated data within their declared bounds.
    #[arg(long = "input", value_name = "PARTY=FILE.csv")]
    inputs: Vec<String>,
    /// After the first decryption, change the committee twice by verifiable
    /// resharing (the last participant drops out; then a new one joins and
    /// the threshold rises by one) and decrypt again after each change.
    #[arg(long)]
    reshare: bool,
    /// Run each participant's key operations in its own enclave process.
    /// `insecure-sim` is the simulated enclave: it gives NO hardware
    /// protection, and this flag allows its evidence for this run only.
    #[arg(long, value_name = "KIND")]
    enclave: Option<EnclaveMode>,
    /// TEST ONLY: run participant POINT's simulated enclave at another SVN, so
    /// that its measurement is not the one the session's policy allows.
    #[arg(long = "test-only-enclave-svn", value_name = "POINT=SVN", hide = true)]
    test_only_enclave_svn: Vec<String>,
}

/// Where participants' key operations run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum EnclaveMode {
    /// One simulated enclave process per participant: NO hardware protection.
    InsecureSim,
}

/// The SVN of the demo's simulated enclaves.
#[cfg(feature = "insecure-sim")]
const DEMO_ENCLAVE_SVN: u32 = 1;

#[derive(Serialize)]
struct EnclaveInfo {
    kind: &'static str,
    hardware_protected: bool,
    processes: usize,
}

/// The set-up committee, in one process or behind enclave processes.
enum Session {
    Local(Box<LocalCommittee>),
    #[cfg(feature = "insecure-sim")]
    Enclave(Box<synod_local::enclave::EnclaveCommittee>),
}

impl Session {
    fn phases(&self) -> &[synod_local::Phase] {
        match self {
            Self::Local(c) => &c.phases,
            #[cfg(feature = "insecure-sim")]
            Self::Enclave(c) => &c.phases,
        }
    }

    fn encrypt_inputs(
        &mut self,
        columns: &BTreeMap<ColumnRef, Vec<i64>>,
        owners: &BTreeMap<String, EvaluationPoint>,
        rng: &mut ChaCha20Rng,
    ) -> Result<BTreeMap<ColumnRef, Vec<synod_he::Ciphertext>>> {
        Ok(match self {
            Self::Local(c) => c.encrypt_inputs(columns, owners, rng)?,
            #[cfg(feature = "insecure-sim")]
            Self::Enclave(c) => c.encrypt_inputs(columns, owners, rng)?,
        })
    }

    fn evaluate(
        &self,
        plan: &Plan,
        inputs: &BTreeMap<ColumnRef, Vec<synod_he::Ciphertext>>,
    ) -> Result<synod_circuit::EvaluatedOutputs> {
        let keys = match self {
            Self::Local(c) => c.keys(),
            #[cfg(feature = "insecure-sim")]
            Self::Enclave(c) => c.keys(),
        };
        Ok(keys.evaluate(plan, inputs)?)
    }

    fn decrypt_outputs(
        &mut self,
        plan: &Plan,
        outputs: &synod_circuit::EvaluatedOutputs,
        active: &[EvaluationPoint],
        rng: &mut ChaCha20Rng,
    ) -> Result<Vec<Vec<i128>>> {
        Ok(match self {
            Self::Local(c) => c.decrypt_outputs(plan, outputs, active, rng)?,
            #[cfg(feature = "insecure-sim")]
            Self::Enclave(c) => c.decrypt_outputs(plan, outputs, active)?,
        })
    }
}

/// Parses `--test-only-enclave-svn POINT=SVN` items.
fn test_only_svns(items: &[String]) -> Result<BTreeMap<u32, u32>> {
    items
        .iter()
        .map(|item| {
            let parsed = item
                .split_once('=')
                .and_then(|(p, s)| Some((p.trim().parse().ok()?, s.trim().parse().ok()?)));
            parsed.with_context(|| format!("--test-only-enclave-svn {item:?}: expected POINT=SVN"))
        })
        .collect()
}

#[derive(Serialize)]
struct EpochRow {
    epoch: u64,
    t: usize,
    members: Vec<u32>,
    qualified: Vec<u32>,
    decryptors: Vec<u32>,
    results_ok: bool,
    ms: f64,
    bytes_per_member: u64,
}

#[derive(Serialize)]
struct ResultRow {
    name: String,
    #[serde(serialize_with = "scalar_or_list")]
    expected: Option<Vec<f64>>,
    #[serde(serialize_with = "scalar_or_list")]
    decrypted: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_in_clear: Option<&'static str>,
    ok: bool,
}

#[derive(Serialize)]
struct Report {
    ok: bool,
    parties: usize,
    threshold: usize,
    decryptors: Vec<u32>,
    rows: usize,
    parameters: String,
    log_q: f64,
    plaintext_modulus: u64,
    /// Ciphertext primes per key-switching digit of the relinearisation and
    /// rotation keys (the plan's choice).
    relin_digit_primes: usize,
    rotation_digit_primes: usize,
    output_hash: String,
    results: Vec<ResultRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    epochs: Vec<EpochRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enclave: Option<EnclaveInfo>,
    #[serde(serialize_with = "ordered_map")]
    phases_ms: Vec<(String, f64)>,
    total_ms: f64,
}

/// One value as a number, several (a per-row result) as a list; `null` when
/// there is no expected value (user data).
fn scalar_or_list<S: serde::Serializer, V: AsValues>(v: &V, s: S) -> Result<S::Ok, S::Error> {
    match v.values() {
        None => s.serialize_none(),
        Some([x]) => s.serialize_f64(*x),
        Some(list) => s.collect_seq(list),
    }
}

trait AsValues {
    fn values(&self) -> Option<&[f64]>;
}
impl AsValues for Vec<f64> {
    fn values(&self) -> Option<&[f64]> {
        Some(self)
    }
}
impl AsValues for Option<Vec<f64>> {
    fn values(&self) -> Option<&[f64]> {
        self.as_deref()
    }
}

/// Phases as a JSON object, in the order they ran.
fn ordered_map<S: serde::Serializer>(v: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, ms)| (k, ms)))
}

/// The built-in circuit: sum, mean and variance of each party's column and
/// the inner product of party 1's and party 2's columns.
fn builtin_spec(parties: usize) -> Result<CircuitSpec> {
    // 11 aggregates, decrypted up to three times with --reshare.
    let mut text = String::from("name = \"synod demo\"\nmax_decryptions = 64\n");
    for i in 1..=parties {
        text += &format!("[[inputs]]\nparty = \"p{i}\"\ncolumn = \"x\"\nmin = -1000\nmax = 1000\n");
    }
    for i in 1..=parties {
        text += &format!("[[outputs]]\nname = \"sum p{i}.x\"\nexpr = \"sum(p{i}.x)\"\n");
        text += &format!("[[outputs]]\nname = \"mean p{i}.x\"\nexpr = \"mean(p{i}.x)\"\n");
        text += &format!("[[outputs]]\nname = \"variance p{i}.x\"\nexpr = \"variance(p{i}.x)\"\n");
    }
    if parties >= 2 {
        text += "[[outputs]]\nname = \"inner product p1.x·p2.x\"\nexpr = \"inner_product(p1.x, p2.x)\"\n";
    }
    Ok(CircuitSpec::from_toml(&text)?)
}

struct Progress {
    quiet: bool,
    step: usize,
    total: usize,
    start: Instant,
}

impl Progress {
    fn begin(&mut self, what: &str) {
        self.step += 1;
        self.start = Instant::now();
        if !self.quiet {
            eprint!("[{}/{}] {what} … ", self.step, self.total);
            let _ = std::io::stderr().flush();
        }
    }

    fn end(&mut self) -> f64 {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        if !self.quiet {
            eprintln!("{ms:.0} ms");
        }
        ms
    }

    fn note(&self, what: &str) {
        if !self.quiet {
            eprint!("{what}; ");
            let _ = std::io::stderr().flush();
        }
    }
}

/// Reads a CSV with a header row into named columns of reals.
fn read_csv(path: &Path) -> Result<BTreeMap<String, Vec<f64>>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: no header row", path.display()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut cols: BTreeMap<String, Vec<f64>> =
        headers.iter().map(|h| (h.clone(), Vec::new())).collect();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: record {}", path.display(), i + 1))?;
        for (h, field) in headers.iter().zip(record.iter()) {
            let v: f64 = field.trim().parse().with_context(|| {
                format!(
                    "{}: record {}, column {h:?}: {field:?} is not a number",
                    path.display(),
                    i + 1
                )
            })?;
            if let Some(c) = cols.get_mut(h) {
                c.push(v);
            }
        }
    }
    Ok(cols)
}

fn write_csv(path: &Path, columns: &[(&str, &[f64], u64)]) -> Result<()> {
    let mut w = csv::Writer::from_path(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    w.write_record(columns.iter().map(|(n, _, _)| *n))?;
    let rows = columns.first().map(|(_, v, _)| v.len()).unwrap_or(0);
    for r in 0..rows {
        let record: Vec<String> = columns
            .iter()
            .map(|(_, v, scale)| {
                let x = v.get(r).copied().unwrap_or(0.0);
                if *scale == 1 {
                    format!("{}", x as i64)
                } else {
                    format!("{x}")
                }
            })
            .collect();
        w.write_record(&record)?;
    }
    w.flush()?;
    Ok(())
}

/// Runs the demo; `Ok(false)` when a decrypted result does not match.
pub fn run(args: DemoArgs) -> Result<bool> {
    if args.parties == 0 {
        bail!("--parties must be at least 1");
    }
    if args.threshold == 0 || args.threshold > args.parties {
        bail!(
            "--threshold must be between 1 and --parties ({}), not {}",
            args.parties,
            args.threshold
        );
    }
    if args.reshare && args.parties <= args.threshold {
        bail!(
            "--reshare needs at least t+1 participants so that one can leave \
             (--parties {} --threshold {})",
            args.parties,
            args.threshold
        );
    }
    if !args.test_only_enclave_svn.is_empty() && args.enclave.is_none() {
        bail!("--test-only-enclave-svn needs --enclave");
    }
    let svn_overrides = test_only_svns(&args.test_only_enclave_svn)?;
    if args.enclave == Some(EnclaveMode::InsecureSim) {
        if cfg!(not(feature = "insecure-sim")) {
            bail!("--enclave insecure-sim: this synod was built without the insecure-sim feature");
        }
        eprintln!(
            "warning: --enclave insecure-sim: each participant's key operations run in a \
             simulated enclave process that gives NO hardware protection \
             (hardware_protected: false); simulated evidence is accepted for this run only."
        );
    }
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let spec = match &args.spec {
        Some(path) => {
            CircuitSpec::from_path(path).with_context(|| format!("circuit {}", path.display()))?
        }
        None => builtin_spec(args.parties)?,
    };
    let party_names = spec.parties();
    if party_names.len() > args.parties {
        bail!(
            "the circuit has {} input parties but --parties is {}",
            party_names.len(),
            args.parties
        );
    }

    // Inputs: files where given, generated data otherwise.
    let mut given: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for item in &args.inputs {
        let (party, file) = item
            .split_once('=')
            .with_context(|| format!("--input {item:?}: expected PARTY=FILE.csv"))?;
        if !party_names.iter().any(|p| p == party) {
            bail!(
                "--input {item:?}: the circuit has no party {party:?} (parties: {})",
                party_names.join(", ")
            );
        }
        given.insert(party.to_string(), read_csv(Path::new(file))?);
    }
    let rows = match given
        .values()
        .flat_map(|cols| cols.values())
        .map(|v| v.len())
        .next()
    {
        Some(r) => r,
        None => args.rows,
    };
    let mut reals: BTreeMap<ColumnRef, Vec<f64>> = BTreeMap::new();
    let mut generated = true;
    for input in &spec.inputs {
        let col = ColumnRef {
            party: input.party.clone(),
            column: input.column.clone(),
        };
        let values = match given.get(&input.party) {
            Some(cols) => {
                generated = false;
                cols.get(&input.column)
                    .with_context(|| {
                        format!("input of {}: no column {:?}", input.party, input.column)
                    })?
                    .clone()
            }
            None => {
                let scale = input.scale() as f64;
                (0..rows)
                    .map(|_| (rng.random_range(input.min..=input.max) * scale).round() / scale)
                    .collect()
            }
        };
        if values.len() != rows {
            bail!("{col} has {} rows, other inputs have {rows}", values.len());
        }
        reals.insert(col, values);
    }
    if let Some(dir) = &args.export {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for party in &party_names {
            let cols: Vec<(&str, &[f64], u64)> = spec
                .inputs
                .iter()
                .filter(|i| &i.party == party)
                .filter_map(|i| {
                    reals
                        .get(&ColumnRef {
                            party: i.party.clone(),
                            column: i.column.clone(),
                        })
                        .map(|v| (i.column.as_str(), v.as_slice(), i.scale()))
                })
                .collect();
            write_csv(&dir.join(format!("{party}.csv")), &cols)?;
        }
    }

    let mut progress = Progress {
        quiet: args.json,
        step: 0,
        total: 5,
        start: Instant::now(),
    };
    let total = Instant::now();
    let mut phases: Vec<(String, f64)> = Vec::new();

    progress.begin("plan: checking ranges, depth and noise");
    let plan =
        Plan::new(&spec, rows, args.parties, args.threshold).context("the circuit cannot run")?;
    let params = plan.params().clone();
    progress.note(&format!(
        "{} with p = {} ({} bits), log q = {:.0}, key-switching digits of {} (relinearisation) \
         and {} (rotations) primes",
        params.set(),
        params.plaintext(),
        params.plaintext_bits(),
        params.log_q(0),
        params.relin_digit_primes(),
        params.rotation_digit_primes()
    ));
    phases.push(("plan".to_string(), progress.end()));

    progress.begin(&format!(
        "setup: {} participants, threshold {}",
        args.parties, args.threshold
    ));
    let points: Vec<EvaluationPoint> = (1..=args.parties as u32)
        .map(EvaluationPoint::new)
        .collect::<synod_he::Result<_>>()?;
    let mut session = [0u8; 32];
    rng.fill(&mut session);
    #[cfg(feature = "insecure-sim")]
    let mut processes = None;
    let mut committee = match args.enclave {
        None => Session::Local(Box::new(LocalCommittee::setup(
            &params,
            &points,
            args.threshold,
            session,
            &plan.galois_elements()?,
            &mut rng,
            &mut |step| progress.note(step),
        )?)),
        #[cfg(feature = "insecure-sim")]
        Some(EnclaveMode::InsecureSim) => {
            progress.note("starting one enclave process per participant");
            let procs = crate::enclave::EnclaveProcesses::start(&points, &|p| {
                svn_overrides
                    .get(&p.get())
                    .copied()
                    .unwrap_or(DEMO_ENCLAVE_SVN)
            })?;
            let policy = crate::enclave::demo_policy(DEMO_ENCLAVE_SVN)?;
            let c = synod_local::enclave::EnclaveCommittee::setup(
                &params,
                procs.connect()?,
                args.threshold,
                session,
                &plan.galois_elements()?,
                &policy,
                &mut rng,
                &mut |step| progress.note(step),
            );
            let c = c.context("set-up through enclave processes failed")?;
            processes = Some(procs);
            Session::Enclave(Box::new(c))
        }
        #[cfg(not(feature = "insecure-sim"))]
        Some(EnclaveMode::InsecureSim) => {
            let _ = &svn_overrides;
            bail!("--enclave insecure-sim: this synod was built without the insecure-sim feature")
        }
    };
    let setup_ms = progress.end();
    for p in committee.phases() {
        phases.push((format!("setup: {}", p.name), p.ms));
    }
    phases.push(("setup".to_string(), setup_ms));

    progress.begin("inputs: each party encrypts its columns");
    let mut ints = BTreeMap::new();
    for (col, values) in &reals {
        ints.insert(col.clone(), plan.encode_column(col, values)?);
    }
    let owners = LocalCommittee::owners(&plan)?;
    let cts = committee.encrypt_inputs(&ints, &owners, &mut rng)?;
    phases.push(("inputs".to_string(), progress.end()));

    progress.begin("compute: evaluating the circuit on ciphertexts");
    let evaluated = committee.evaluate(&plan, &cts)?;
    phases.push(("compute".to_string(), progress.end()));

    let mut decryptors = points.clone();
    while decryptors.len() > args.threshold {
        let i = rng.random_range(0..decryptors.len());
        decryptors.remove(i);
    }
    let names: Vec<String> = decryptors.iter().map(|p| p.to_string()).collect();
    progress.begin(&format!(
        "output: threshold decryption by {}",
        names.join(", ")
    ));
    let decrypted = committee.decrypt_outputs(&plan, &evaluated, &decryptors, &mut rng)?;
    phases.push(("decrypt".to_string(), progress.end()));

    let clear = plan.evaluate_clear(&ints)?;
    let mut ok = true;
    for (i, (d, c)) in decrypted.iter().zip(&clear).enumerate() {
        if d.get(..c.len()) != Some(c.as_slice()) {
            ok = false;
            eprintln!(
                "mismatch in {}",
                plan.aggregates()
                    .get(i)
                    .map(|a| a.label.as_str())
                    .unwrap_or("?")
            );
        }
    }
    let got = plan.finish(&decrypted)?;
    let want = plan.finish(&clear)?;
    let results: Vec<ResultRow> = got
        .into_iter()
        .zip(want)
        .map(|(g, w)| {
            let row_ok = g.values == w.values;
            ok &= row_ok;
            ResultRow {
                name: g.name,
                expected: generated.then_some(w.values),
                decrypted: g.values,
                finished_in_clear: g.clear_step,
                ok: row_ok,
            }
        })
        .collect();
    let mut epochs = Vec::new();
    if args.reshare {
        let mut current = points.clone();
        let mut t = args.threshold;
        let mut next_point = args.parties as u32 + 1;
        for change in 0..2 {
            let dealers = current.clone();
            let (members, t_new, what) = if change == 0 {
                let mut m = current.clone();
                let left = m.pop();
                if m.len() < t || m.is_empty() {
                    bail!("--reshare needs at least t+1 participants so that one can leave");
                }
                (
                    m,
                    t,
                    format!("{} leaves", left.map(|p| p.to_string()).unwrap_or_default()),
                )
            } else {
                let mut m = current.clone();
                let joined = EvaluationPoint::new(next_point)?;
                next_point += 1;
                m.push(joined);
                let t_new = (t + 1).min(m.len());
                (m, t_new, format!("{joined} joins"))
            };
            progress.total += 2;
            progress.begin(&format!(
                "reshare: {what}; {t_new} of {} from now on",
                members.len()
            ));
            let r = match &mut committee {
                Session::Local(local) => {
                    local.reshare(&members, t_new, &dealers, &Default::default(), &mut rng)?
                }
                #[cfg(feature = "insecure-sim")]
                Session::Enclave(c) => {
                    let procs = processes
                        .as_mut()
                        .context("the enclave processes are gone")?;
                    let mut joiners = Vec::new();
                    for &p in members.iter().filter(|p| !current.contains(p)) {
                        progress.note(&format!("starting {p}'s enclave process"));
                        joiners.push((p, procs.add(p, DEMO_ENCLAVE_SVN)?));
                    }
                    let policy = crate::enclave::demo_policy(DEMO_ENCLAVE_SVN)?;
                    c.reshare(
                        joiners,
                        &members,
                        t_new,
                        &dealers,
                        &policy,
                        &Default::default(),
                        &mut rng,
                    )
                    .context("resharing through enclave processes failed")?
                }
            };
            let ms = progress.end();
            let mut active = members.clone();
            while active.len() > t_new {
                let i = rng.random_range(0..active.len());
                active.remove(i);
            }
            let names: Vec<String> = active.iter().map(|p| p.to_string()).collect();
            progress.begin(&format!("output again: decryption by {}", names.join(", ")));
            let again = committee.decrypt_outputs(&plan, &evaluated, &active, &mut rng)?;
            progress.end();
            let results_ok = again == decrypted;
            ok &= results_ok;
            epochs.push(EpochRow {
                epoch: r.epoch,
                t: r.t,
                members: r.members.clone(),
                qualified: r.qualified.clone(),
                decryptors: active.iter().map(|p| p.get()).collect(),
                results_ok,
                ms,
                bytes_per_member: r.bytes_per_member,
            });
            phases.push((format!("reshare to epoch {}", r.epoch), ms));
            current = members;
            t = t_new;
        }
    }
    #[cfg(feature = "insecure-sim")]
    let started = processes.as_ref().map_or(args.parties, |p| p.count());
    #[cfg(not(feature = "insecure-sim"))]
    let started = args.parties;
    let enclave_info = args.enclave.map(|_| EnclaveInfo {
        kind: "simulated",
        hardware_protected: false,
        processes: started,
    });
    drop(committee);
    #[cfg(feature = "insecure-sim")]
    if let Some(procs) = processes {
        procs.shutdown()?;
    }
    let report = Report {
        ok,
        parties: args.parties,
        threshold: args.threshold,
        decryptors: decryptors.iter().map(|p| p.get()).collect(),
        rows,
        parameters: params.set().to_string(),
        log_q: params.log_q(0),
        plaintext_modulus: params.plaintext(),
        relin_digit_primes: params.relin_digit_primes(),
        rotation_digit_primes: params.rotation_digit_primes(),
        output_hash: hex::encode(evaluated.hash),
        results,
        epochs,
        enclave: enclave_info,
        phases_ms: phases,
        total_ms: total.elapsed().as_secs_f64() * 1000.0,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_tables(&report, &plan, seed);
    }
    Ok(ok)
}

fn fmt_values(v: &[f64]) -> String {
    match v {
        [x] => fmt_num(*x),
        _ => {
            let head: Vec<String> = v.iter().take(3).map(|x| fmt_num(*x)).collect();
            format!(
                "[{}{}] ({} rows)",
                head.join(", "),
                if v.len() > 3 { ", …" } else { "" },
                v.len()
            )
        }
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.6}")
    }
}

fn print_tables(r: &Report, plan: &Plan, seed: u64) {
    println!();
    println!(
        "synod demo — {} participants, threshold {}, {} rows, seed {seed}",
        r.parties, r.threshold, r.rows
    );
    println!(
        "parameters {}: log q = {:.1}, p = {}, key-switching digits of {}/{} primes \
         (relinearisation/rotations); decrypted by participants {:?}",
        r.parameters,
        r.log_q,
        r.plaintext_modulus,
        r.relin_digit_primes,
        r.rotation_digit_primes,
        r.decryptors
    );
    if let Some(e) = &r.enclave {
        println!(
            "enclaves: {} ({} processes, one per participant), hardware_protected: {}",
            e.kind, e.processes, e.hardware_protected
        );
    }
    println!();
    let w = r
        .results
        .iter()
        .map(|x| x.name.len())
        .max()
        .unwrap_or(4)
        .max(6);
    println!("{:<w$}  {:>24}  {:>24}", "result", "decrypted", "plaintext");
    for row in &r.results {
        let expected = row
            .expected
            .as_deref()
            .map(fmt_values)
            .unwrap_or_else(|| "—".into());
        let mark = if row.ok { "ok" } else { "MISMATCH" };
        let clear = if row.finished_in_clear.is_some() {
            " (division in the clear)"
        } else {
            ""
        };
        println!(
            "{:<w$}  {:>24}  {:>24}  {mark}{clear}",
            row.name,
            fmt_values(&row.decrypted),
            expected
        );
    }
    println!();
    println!(
        "{:<34} {:>6} {:>6} {:>9}",
        "encrypted aggregate", "depth", "level", "flooding"
    );
    for a in plan.aggregates() {
        println!(
            "{:<34} {:>6} {:>6} {:>7} b",
            truncate(&a.label, 34),
            a.depth,
            a.level,
            a.flooding_bits()
        );
    }
    let packs = plan.packs();
    if !packs.is_empty() {
        let packed: usize = packs.iter().map(|p| p.aggregates.len()).sum();
        let traced: usize = packs
            .iter()
            .map(|p| match p.kind {
                synod_circuit::PackKind::Traces(layout) => layout.count,
                synod_circuit::PackKind::Constants => 0,
            })
            .sum();
        let (n, s) = (packs.len(), if packs.len() == 1 { "" } else { "s" });
        let how = match traced {
            0 => String::new(),
            t if t == packed => " (slot sums traced together)".to_string(),
            t => format!(" ({t} slot sums traced together)"),
        };
        println!(
            "{packed} one-value aggregates were packed into {n} ciphertext{s}{how}, one \
             coefficient each, and opened by {n} threshold decryption{s}"
        );
    }
    if !r.epochs.is_empty() {
        println!();
        println!(
            "{:<6} {:>3}  {:<22} {:<16} {:<14} {:>9} {:>13}  results",
            "epoch", "t", "members", "qualified dealers", "decryptors", "ms", "bytes/member"
        );
        for e in &r.epochs {
            println!(
                "{:<6} {:>3}  {:<22} {:<16} {:<14} {:>9.0} {:>13}  {}",
                e.epoch,
                e.t,
                format!("{:?}", e.members),
                format!("{:?}", e.qualified),
                format!("{:?}", e.decryptors),
                e.ms,
                e.bytes_per_member,
                if e.results_ok { "same" } else { "DIFFERENT" }
            );
        }
    }
    println!();
    println!("{:<34} {:>10}", "phase", "ms");
    for (name, ms) in r.phases_ms.iter() {
        println!("{name:<34} {ms:>10.1}");
    }
    println!("{:<34} {:>10.1}", "total", r.total_ms);
    println!();
    println!("output hash {}", r.output_hash);
    println!(
        "{}",
        if r.ok {
            "all results match"
        } else {
            "RESULTS DO NOT MATCH"
        }
    );
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}
