//! Resharing cost: time and bytes per member for n = 5, 20, 50, 100 members
//! with t = ⌊n/2⌋ + 1 at N = 8192, resharing n → n (the same committee, as a
//! proactive refresh) with `min(n, t + 2)` dealers: enough to name one
//! dealer with a wrong constant term.
//!
//! Run: `cargo bench -p synod-local --bench reshare` (release build).
//! `SYNOD_RESHARE_SIZES=5,20` picks the sizes (default 5,20,50,100).
//! CPU time is the process's time on CPU, every thread (all simulated members run in
//! this one process, so it is the CPU summed over all members).
//! `SYNOD_TRACE=1` prints the wall-clock and CPU time of each stage (the
//! dealers' deal/seal summed over the dealing loop).
//! `SYNOD_PERF_CTL=<fifo>` writes `enable`/`disable` to a `perf record
//! --control fifo:<fifo> -D -1` control pipe around each resharing, so a
//! profile leaves the set-up out.

/// mimalloc keeps freed pages for reuse (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use rand::SeedableRng;
use synod_he::{EvaluationPoint, ParameterSet, Params};
use synod_local::{LocalCommittee, ReshareFaults};

/// CPU seconds of every thread of this process so far, from
/// `/proc/self/task/*/schedstat` (nanoseconds on CPU; the rayon workers live
/// as long as the process). Zero where there is no procfs.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ns: u64 = tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// Wall-clock and CPU seconds per stage, summed by name, in the order the
/// stages first ended.
struct Stages {
    last: Instant,
    last_cpu: f64,
    totals: Vec<(&'static str, f64, f64)>,
}

impl Stages {
    fn new() -> Self {
        Self {
            last: Instant::now(),
            last_cpu: cpu_seconds(),
            totals: Vec::new(),
        }
    }

    fn end(&mut self, name: &'static str) {
        let (wall, cpu) = (self.last.elapsed().as_secs_f64(), cpu_seconds());
        let spent = cpu - self.last_cpu;
        match self.totals.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, w, c)) => {
                *w += wall;
                *c += spent;
            }
            None => self.totals.push((name, wall, spent)),
        }
        self.last = Instant::now();
        self.last_cpu = cpu;
    }

    fn print(&self) {
        for (name, wall, cpu) in &self.totals {
            eprintln!("reshare: {name}: {wall:.3} s wall, {cpu:.3} s CPU");
        }
    }
}

fn main() {
    // The main thread works in rayon's pool (see `synod_he::join_global_pool`).
    synod_he::join_global_pool();
    let sizes: Vec<usize> = std::env::var("SYNOD_RESHARE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![5, 20, 50, 100]);
    let params = match Params::new(ParameterSet::Bfv8192, 30) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("parameters: {e}");
            return;
        }
    };
    println!(
        "resharing n → n at N = 8192, log q = {:.0}, p = {} ({} bits); threads: {}",
        params.log_q(0),
        params.plaintext(),
        params.plaintext_bits(),
        rayon::current_num_threads()
    );
    println!(
        "{:>5} {:>4} {:>4} {:>12} {:>12} {:>16} {:>14}",
        "n", "t", "|D|", "wall s", "cpu s", "bytes/member", "bytes/member/n"
    );
    for n in sizes {
        let t = n / 2 + 1;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(n as u64);
        let points: Vec<EvaluationPoint> = (1..=n as u32)
            .filter_map(|x| EvaluationPoint::new(x).ok())
            .collect();
        let setup = Instant::now();
        let mut committee =
            match LocalCommittee::setup(&params, &points, t, [7; 32], &[], &mut rng, &mut |_| {}) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("n = {n}: set-up failed: {e}");
                    continue;
                }
            };
        eprintln!("n = {n}: set-up {:.1} s", setup.elapsed().as_secs_f64());
        let perf = |cmd: &str| {
            if let Some(ctl) = std::env::var_os("SYNOD_PERF_CTL") {
                let _ = std::fs::write(ctl, cmd);
            }
        };
        perf("enable\n");
        let cpu0 = cpu_seconds();
        let start = Instant::now();
        let dealers = points.get(..(t + 2).min(n)).unwrap_or(&points);
        // Stage timings only when asked for: each reads every thread's
        // schedstat, inside the timed region.
        let trace = std::env::var_os("SYNOD_TRACE").is_some();
        let mut stages = Stages::new();
        let outcome = committee.reshare_observed(
            &points,
            t,
            dealers,
            &ReshareFaults::default(),
            &mut rng,
            &mut |name| {
                if trace {
                    stages.end(name);
                }
            },
        );
        perf("disable\n");
        if trace {
            stages.print();
        }
        match outcome {
            Ok(r) => println!(
                "{n:>5} {t:>4} {:>4} {:>12.2} {:>12.2} {:>16} {:>14}",
                dealers.len(),
                start.elapsed().as_secs_f64(),
                cpu_seconds() - cpu0,
                r.bytes_per_member,
                r.bytes_per_member / n as u64
            ),
            Err(e) => eprintln!("n = {n}: resharing failed: {e}"),
        }
    }
}
