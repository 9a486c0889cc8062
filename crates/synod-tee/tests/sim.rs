//! The simulated enclave across a real process boundary (a Unix socket served by another thread
//! of this test binary): its evidence, its refusals, sealing, and a threshold decryption whose
//! key material exists only inside three enclave servers.

#![cfg(feature = "insecure-sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::thread::JoinHandle;

use synod_he::Committee;
use synod_proto::SessionId;
use synod_tee::sim::{serve_enclave, EnclaveClient, SimConfig};
use synod_tee::verify::verify_evidence;
use synod_tee::{
    Enclave, EnclaveKind, Error, Policy, PolicyViolation, ReportDataInput, SealedBlob, UnixTime,
};

use common::sim::{config, start};

const NOW: UnixTime = UnixTime(1_750_000_000);

fn binding(enclave: &mut dyn Enclave, nonce: [u8; 32], participant: u32) -> ReportDataInput {
    ReportDataInput {
        nonce,
        transport_key: enclave.transport_key().unwrap().to_bytes(),
        participant,
        epoch: 0,
    }
}

#[test]
fn simulated_enclave_says_it_is_unprotected_and_policy_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, server) = start(dir.path(), "e", config(dir.path()));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let mut client = EnclaveClient::connect(&socket).unwrap();
    assert_eq!(client.kind(), EnclaveKind::InsecureSimulated);
    assert!(!client.hardware_protected());

    let expected = binding(&mut client, [7; 32], 1).digest();
    let evidence = client.attest(&expected).unwrap();
    let claims = verify_evidence(&evidence, NOW).unwrap();
    assert!(!claims.hardware_protected);
    assert_eq!(claims.kind, EnclaveKind::InsecureSimulated);
    assert_eq!(claims.measurement.len(), 48);
    assert!(claims.to_string().contains("hardware_protected: false"));

    // Default policy: refused.
    assert_eq!(
        Policy::default().check(&claims, &expected),
        Err(PolicyViolation::SimulatedRefused)
    );
    // Allowed explicitly, for this measurement: accepted.
    let lenient = Policy {
        allow_simulated: true,
        measurements: vec![claims.measurement.clone()],
        ..Policy::default()
    };
    lenient.check(&claims, &expected).unwrap();
    // Replayed evidence (another verifier's nonce): refused.
    let other = binding(&mut client, [8; 32], 1).digest();
    assert_eq!(
        lenient.check(&claims, &other),
        Err(PolicyViolation::ReportDataMismatch)
    );
    // A forged report (edited after signing) fails verification.
    let synod_tee::Evidence::InsecureSimulated(mut report) = evidence.clone() else {
        panic!("simulated evidence")
    };
    report.body.svn = 99;
    assert!(verify_evidence(&synod_tee::Evidence::InsecureSimulated(report), NOW).is_err());

    // Sealing through the boundary.
    let id = synod_tee::KeyId::new("note").unwrap();
    let blob = client.seal(&id, b"sealed by the enclave").unwrap();
    let (back_id, pt) = client.unseal(&blob).unwrap();
    assert_eq!(
        (back_id, pt.as_slice()),
        (id, &b"sealed by the enclave"[..])
    );
    let mut bad = blob.0.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let err = client.unseal(&SealedBlob(bad)).unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref m) if m.contains("failed authentication")),
        "{err}"
    );

    // Key operations out of order are refused, not panicked on.
    assert!(matches!(client.relin_round1(), Err(Error::Remote(_))));

    client.shutdown().unwrap();
    server.join().unwrap().unwrap();
}

#[test]
fn refuses_to_start_without_the_insecure_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        insecure_no_hardware_protection: false,
        ..config(dir.path())
    };
    let err = serve_enclave(&dir.path().join("x.sock"), &cfg).unwrap_err();
    assert!(err.to_string().contains("no hardware protection"), "{err}");
}

#[test]
fn refuses_a_peer_of_another_user() {
    let dir = tempfile::tempdir().unwrap();
    let me = rustix_uid();
    let cfg = SimConfig {
        allowed_uid: Some(me.wrapping_add(1)),
        ..config(dir.path())
    };
    let (socket, _server) = start(dir.path(), "other-user", cfg);
    // The server drops the connection before answering the greeting.
    assert!(EnclaveClient::connect(&socket).is_err());
}

fn rustix_uid() -> u32 {
    // The test's own uid (the owner of this process).
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap()
}

/// Three enclave servers run key generation and thresholdisation; sub-shares travel only
/// HPKE-sealed to transport keys verified in each peer's evidence; two of them decrypt.
#[test]
fn threshold_decryption_through_three_enclaves() {
    let dir = tempfile::tempdir().unwrap();
    let points = common::points(1..=3);
    let committee = Committee::new(points.clone(), 2).unwrap();
    let session = SessionId([42; 32]);
    let mut servers = Vec::new();
    let mut enclaves: Vec<EnclaveClient> = Vec::new();
    for x in 1..=3 {
        let (socket, server) = start(dir.path(), &format!("p{x}"), config(dir.path()));
        servers.push(server);
        enclaves.push(EnclaveClient::connect(&socket).unwrap());
    }

    let pk = common::generate_keys(&mut enclaves, &points, &committee, session);

    // Every participant verifies every peer's evidence before dealing to it.
    let mut recipients = Vec::new();
    for (i, e) in enclaves.iter_mut().enumerate() {
        let participant = points[i].get();
        let input = binding(e, [i as u8; 32], participant);
        let claims = verify_evidence(&e.attest(&input.digest()).unwrap(), NOW).unwrap();
        let policy = Policy {
            allow_simulated: true,
            measurements: vec![claims.measurement.clone()],
            ..Policy::default()
        };
        policy.check(&claims, &input.digest()).unwrap();
        recipients.push(synod_proto::TransportPublicKey::from_bytes(&input.transport_key).unwrap());
    }
    let inbox = common::deal_thresholdization(session, &points, &recipients, |i, to| {
        enclaves[i].deal_thresholdization(to).unwrap()
    });
    // A sub-share moved to another recipient does not open.
    let stolen = vec![
        inbox[1][0].clone(),
        inbox[0][1].clone(),
        inbox[0][2].clone(),
    ];
    assert!(enclaves[0].receive_thresholdization(stolen).is_err());
    for (e, incoming) in enclaves.iter_mut().zip(inbox) {
        e.receive_thresholdization(incoming).unwrap();
    }

    common::assert_decrypts(
        &pk,
        &committee,
        &mut enclaves,
        &points,
        &[points[0], points[2]],
        &[5, -3, 12345],
    );

    for e in enclaves {
        e.shutdown().unwrap();
    }
    for s in servers {
        s.join().unwrap().unwrap();
    }
}

fn stateful(dir: &Path, x: u32) -> SimConfig {
    SimConfig {
        state_dir: Some(dir.join(format!("state-{x}"))),
        ..config(dir)
    }
}

/// Each enclave seals its key share to its state directory; enclaves stopped and started again
/// recover their shares and decrypt. A tampered blob, or a blob under another measurement, stops
/// the enclave from starting with a clear error.
#[test]
fn key_shares_sealed_to_disk_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let points = common::points(1..=3);
    let committee = Committee::new(points.clone(), 2).unwrap();
    let session = SessionId([43; 32]);
    let run = |name: &str| {
        let mut servers = Vec::new();
        let mut enclaves = Vec::new();
        for x in 1..=3 {
            let (socket, server) =
                start(dir.path(), &format!("{name}{x}"), stateful(dir.path(), x));
            servers.push(server);
            enclaves.push(EnclaveClient::connect(&socket).unwrap());
        }
        (servers, enclaves)
    };
    let stop = |servers: Vec<JoinHandle<synod_tee::Result<()>>>, enclaves: Vec<EnclaveClient>| {
        for e in enclaves {
            e.shutdown().unwrap();
        }
        for s in servers {
            s.join().unwrap().unwrap();
        }
    };

    let (servers, mut enclaves) = run("first");
    let pk = common::generate_keys(&mut enclaves, &points, &committee, session);
    common::thresholdize(&mut enclaves, &points, session);
    stop(servers, enclaves);
    let share_file = dir
        .path()
        .join("state-1")
        .join(synod_tee::sim::SEALED_SHARE_FILE);
    let sealed = std::fs::read(&share_file).unwrap();
    let mode = std::fs::metadata(&share_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (header, _, _) = synod_tee::seal::SealedHeader::parse(&sealed).unwrap();
    assert_eq!(header.source, synod_tee::seal::KeySource::PlatformSecret);

    // Restarted: the shares come back from disk and decrypt.
    let (servers, mut enclaves) = run("again");
    common::assert_decrypts(
        &pk,
        &committee,
        &mut enclaves,
        &points,
        &[points[0], points[2]],
        &[31, -7, 777],
    );
    stop(servers, enclaves);

    // A tampered blob: the enclave refuses to start, and says why.
    let mut bad = sealed.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&share_file, &bad).unwrap();
    let err = synod_tee::sim::SimulatedEnclave::new(&stateful(dir.path(), 1)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot recover the key share") && msg.contains("failed authentication"),
        "{msg}"
    );
    // Through serve_enclave too: it returns the error instead of listening.
    assert!(serve_enclave(&dir.path().join("bad.sock"), &stateful(dir.path(), 1)).is_err());

    // The genuine blob under another measurement (another SVN is another measurement here).
    std::fs::write(&share_file, &sealed).unwrap();
    let other = SimConfig {
        svn: 2,
        ..stateful(dir.path(), 1)
    };
    let err = synod_tee::sim::SimulatedEnclave::new(&other).unwrap_err();
    assert!(err.to_string().contains("measurement"), "{err}");
    // Under the original configuration it still opens.
    synod_tee::sim::SimulatedEnclave::new(&stateful(dir.path(), 1)).unwrap();
}
