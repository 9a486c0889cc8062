//! Resharing with every participant's share inside its own simulated enclave
//! server (a Unix socket served by a thread of this test binary): the shares
//! never exist outside the enclaves, the new committee decrypts, a member that
//! leaves has erased its share, and a dealer whose host tampers with what it
//! relays is named and excluded.

#![cfg(feature = "tee")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use synod_he::flooding::Flooding;
use synod_he::reshare::Fault;
use synod_he::shamir::ActiveSet;
use synod_he::{EvaluationPoint, ParameterSet, Params};
use synod_local::enclave::{BoxedEnclave, EnclaveCommittee, EnclaveReshareFaults, SessionPolicy};
use synod_tee::enclave::ciphertext_bytes;
use synod_tee::sim::{serve_enclave, EnclaveClient, SimConfig};
use synod_tee::{Policy, UnixTime};

fn pts(xs: &[u32]) -> Vec<EvaluationPoint> {
    xs.iter()
        .map(|&x| EvaluationPoint::new(x).unwrap())
        .collect()
}

fn config(dir: &Path, x: u32) -> SimConfig {
    SimConfig {
        insecure_no_hardware_protection: true,
        platform_dir: dir.join(format!("platform-{x}")),
        svn: 1,
        allowed_uid: None,
        state_dir: Some(dir.join(format!("state-{x}"))),
        hsm: None,
    }
}

struct Servers {
    sockets: Vec<(EvaluationPoint, PathBuf)>,
    handles: Vec<JoinHandle<synod_tee::Result<()>>>,
}

fn start(dir: &Path, xs: &[u32]) -> Servers {
    let mut sockets = Vec::new();
    let mut handles = Vec::new();
    for &x in xs {
        let socket = dir.join(format!("p{x}.sock"));
        let (s, c) = (socket.clone(), config(dir, x));
        handles.push(std::thread::spawn(move || serve_enclave(&s, &c)));
        sockets.push((EvaluationPoint::new(x).unwrap(), socket));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (_, s) in &sockets {
        while !s.exists() {
            assert!(Instant::now() < deadline, "enclave socket did not appear");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Servers { sockets, handles }
}

impl Servers {
    fn connect(&self, xs: &[u32]) -> Vec<(EvaluationPoint, BoxedEnclave)> {
        self.sockets
            .iter()
            .filter(|(p, _)| xs.contains(&p.get()))
            .map(|(p, s)| {
                (
                    *p,
                    Box::new(EnclaveClient::connect(s).unwrap()) as BoxedEnclave,
                )
            })
            .collect()
    }

    fn stop(self, committee: EnclaveCommittee) {
        drop(committee.into_enclaves());
        for (_, s) in &self.sockets {
            EnclaveClient::connect(s).unwrap().shutdown().unwrap();
        }
        for h in self.handles {
            h.join().unwrap().unwrap();
        }
    }
}

fn policy(dir: &Path) -> SessionPolicy {
    SessionPolicy {
        policy: Policy {
            allow_simulated: true,
            measurements: vec![synod_tee::sim::measurement(&config(dir, 0)).unwrap()],
            min_svn: 1,
            ..Policy::default()
        },
        now: UnixTime(1_750_000_000),
    }
}

fn params() -> Params {
    Params::new(ParameterSet::InsecureTestN2048, 20).unwrap()
}

fn setup(dir: &Path, servers: &Servers, xs: &[u32], t: usize) -> EnclaveCommittee {
    EnclaveCommittee::setup(
        &params(),
        servers.connect(xs),
        t,
        [9; 32],
        &[],
        &policy(dir),
        &mut rand::rng(),
        &mut |_| {},
    )
    .unwrap()
}

/// Encrypts under the collective key and decrypts with `active`.
fn round_trip(c: &mut EnclaveCommittee, active: &[u32]) -> synod_local::Result<Vec<i64>> {
    let params = params();
    let values = [7i64, -11, 4242];
    let ct = synod_he::encoding::encrypt_signed(
        &params,
        c.keys().public_key(),
        &values,
        &mut rand::rng(),
    )
    .unwrap()
    .remove(0);
    let flooding = Flooding::new(&params, 0, 20.0, 16, 5).unwrap();
    let pt = c.decrypt(&pts(active), &ct, &flooding)?;
    let decoded = synod_he::encoding::decode_signed(&params, &pt).unwrap();
    assert_eq!(&decoded[..3], &values);
    Ok(decoded[..3].to_vec())
}

/// 3-of-4 → 3-of-4 with P1 leaving and P5 joining, all shares in enclaves; then
/// P5 joins a decryption, P1's enclave has erased its share, and the shares are
/// sealed in each enclave's state directory at the new epoch, from which
/// restarted enclaves recover them.
#[test]
fn reshare_with_every_share_in_an_enclave() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start(dir.path(), &[1, 2, 3, 4, 5]);
    let mut c = setup(dir.path(), &servers, &[1, 2, 3, 4], 3);
    round_trip(&mut c, &[1, 2, 3]).unwrap();
    let sealed_before = std::fs::read(dir.path().join("state-2/key-share.sealed")).unwrap();

    let report = c
        .reshare(
            servers.connect(&[5]),
            &pts(&[2, 3, 4, 5]),
            3,
            &pts(&[1, 2, 3, 4]),
            &policy(dir.path()),
            &EnclaveReshareFaults::default(),
            &mut rand::rng(),
        )
        .unwrap();
    assert_eq!(report.epoch, 1);
    assert_eq!(report.members, vec![2, 3, 4, 5]);
    assert_eq!(report.qualified, vec![1, 2, 3, 4]);
    assert!(report.blamed.is_empty());
    assert_eq!(c.epoch(), 1);

    round_trip(&mut c, &[2, 4, 5]).unwrap();
    round_trip(&mut c, &[3, 4, 5]).unwrap();
    // Two members cannot decrypt under threshold 3.
    assert!(round_trip(&mut c, &[2, 5]).is_err());

    // P1 left: its enclave erased its share and its sealed file.
    let set = ActiveSet::new(c.keys().committee(), pts(&[2, 3, 4])).unwrap();
    let ct = synod_he::encoding::encrypt_signed(
        &params(),
        c.keys().public_key(),
        &[1],
        &mut rand::rng(),
    )
    .unwrap()
    .remove(0);
    let flooding = Flooding::new(&params(), 0, 20.0, 16, 5).unwrap();
    let e1 = c.enclave_mut(pts(&[1])[0]).unwrap();
    let err = e1
        .decryption_share(&set, &ciphertext_bytes(&params(), &ct).unwrap(), &flooding)
        .unwrap_err();
    assert!(err.to_string().contains("no Shamir share"), "{err}");
    assert!(!dir.path().join("state-1/key-share.sealed").exists());
    // P2's sealed share was replaced by the new epoch's; P5 has one now.
    let sealed_after = std::fs::read(dir.path().join("state-2/key-share.sealed")).unwrap();
    assert_ne!(sealed_before, sealed_after);
    assert!(dir.path().join("state-5/key-share.sealed").exists());

    // Stopped and started again, the enclaves recover the new epoch's shares from disk.
    let pk = c.keys().public_key().clone();
    let committee = c.keys().committee().clone();
    servers.stop(c);
    let servers = start(dir.path(), &[2, 4, 5]);
    let params = params();
    let values = [-5i64, 99, 1 << 18];
    let ct = synod_he::encoding::encrypt_signed(&params, &pk, &values, &mut rand::rng())
        .unwrap()
        .remove(0);
    let set = ActiveSet::new(&committee, pts(&[2, 4, 5])).unwrap();
    let flooding = Flooding::new(&params, 0, 20.0, 16, 5).unwrap();
    let shares: Vec<_> = servers
        .connect(&[2, 4, 5])
        .into_iter()
        .map(|(_, mut e)| {
            e.decryption_share(&set, &ciphertext_bytes(&params, &ct).unwrap(), &flooding)
                .unwrap()
        })
        .collect();
    let pt = synod_he::decrypt::combine(&params, &ct, &set, shares).unwrap();
    assert_eq!(
        &synod_he::encoding::decode_signed(&params, &pt).unwrap()[..3],
        &values
    );
    for (_, s) in &servers.sockets {
        EnclaveClient::connect(s).unwrap().shutdown().unwrap();
    }
    for h in servers.handles {
        h.join().unwrap().unwrap();
    }
}

/// A dealer whose host alters its enclave's response is named and excluded;
/// with only `t` dealers the change aborts and the old shares stay valid.
#[test]
fn a_dealer_whose_host_cheats_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start(dir.path(), &[1, 2, 3, 4]);
    let mut c = setup(dir.path(), &servers, &[1, 2, 3, 4], 3);
    let faults = EnclaveReshareFaults {
        tampered_responses: pts(&[2]),
        ..Default::default()
    };

    // Three dealers, one cheating: too few remain; nothing changes.
    let err = c
        .reshare(
            Vec::new(),
            &pts(&[1, 2, 3, 4]),
            3,
            &pts(&[1, 2, 3]),
            &policy(dir.path()),
            &faults,
            &mut rand::rng(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("aborted"), "{err}");
    assert_eq!(c.epoch(), 0);
    round_trip(&mut c, &[1, 2, 4]).unwrap();

    // Four dealers, one cheating: it is blamed and excluded, the rest reshare.
    let report = c
        .reshare(
            Vec::new(),
            &pts(&[1, 2, 3, 4]),
            3,
            &pts(&[1, 2, 3, 4]),
            &policy(dir.path()),
            &faults,
            &mut rand::rng(),
        )
        .unwrap();
    assert_eq!(report.qualified, vec![1, 3, 4]);
    assert!(report
        .blamed
        .iter()
        .any(|b| b.participant.get() == 2 && b.fault == Fault::InconsistentDealing));
    assert_eq!(c.epoch(), 1);
    round_trip(&mut c, &[1, 2, 4]).unwrap();

    servers.stop(c);
}
