//! The simulated enclave sealing its key share under data keys wrapped by a non-extractable key
//! in a PKCS#11 token (SoftHSM2, token initialised in a temporary directory through
//! SOFTHSM2_CONF): the share survives a restart, and is unreadable without the token. When
//! `CI=true` a missing SoftHSM fails the test; elsewhere the test says plainly that it did not run.

#![cfg(all(feature = "hsm", feature = "insecure-sim"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use synod_he::flooding::Flooding;
use synod_he::shamir::ActiveSet;
use synod_he::{Committee, EvaluationPoint, ParameterSet, Params};
use synod_proto::{
    Epoch, MessageContext, ParticipantId, ProtocolName, Recipient, Round, SequenceNumber, SessionId,
};
use synod_tee::enclave::{ciphertext_bytes, IncomingSubShare, SealedRecipient, SessionSetup};
use synod_tee::seal::{KeySource, SealedHeader};
use synod_tee::sim::{
    serve_enclave, EnclaveClient, SimConfig, SimHsm, SimulatedEnclave, DEFAULT_HSM_KEY_LABEL,
    SEALED_SHARE_FILE,
};
use synod_tee::{Enclave, KeyId};

const TOKEN: &str = "synod-sim-token";

fn softhsm_module() -> Option<PathBuf> {
    let candidates = [
        std::env::var("SOFTHSM2_MODULE").unwrap_or_default(),
        "/usr/lib/softhsm/libsofthsm2.so".into(),
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so".into(),
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so".into(),
        "/usr/local/lib/softhsm/libsofthsm2.so".into(),
    ];
    let util = Command::new("softhsm2-util").arg("--version").output();
    if !util.is_ok_and(|o| o.status.success()) {
        return None;
    }
    candidates
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Serves `config` on a thread until the client shuts it down; returns a connected client.
fn serve(
    dir: &Path,
    name: &str,
    config: SimConfig,
) -> (
    EnclaveClient,
    std::thread::JoinHandle<synod_tee::Result<()>>,
) {
    let socket = dir.join(format!("{name}.sock"));
    let s = socket.clone();
    let handle = std::thread::spawn(move || serve_enclave(&s, &config));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(!handle.is_finished(), "the enclave exited before listening");
        assert!(Instant::now() < deadline, "enclave socket did not appear");
        std::thread::sleep(Duration::from_millis(10));
    }
    (EnclaveClient::connect(&socket).unwrap(), handle)
}

#[test]
fn simulated_enclave_seals_its_share_under_an_hsm_wrapped_key() {
    let Some(module) = softhsm_module() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but SoftHSM2 is not installed: run `bash .ci/install-softhsm`");
        }
        eprintln!(
            "NOTE: the simulated-enclave HSM test did NOT run: SoftHSM2 is not installed (run \
             `bash .ci/install-softhsm`)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    // This is the only test in this binary, so no other thread reads the environment.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--so-pin",
            "12345678",
            "--pin",
            "87654321",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, "87654321\n").unwrap();
    let hsm = SimHsm {
        module,
        token_label: TOKEN.into(),
        pin_file: pin_file.clone(),
        key_label: DEFAULT_HSM_KEY_LABEL.into(),
    };
    let config = SimConfig {
        insecure_no_hardware_protection: true,
        platform_dir: dir.path().join("platform"),
        svn: 1,
        allowed_uid: None,
        state_dir: Some(dir.path().join("state")),
        hsm: Some(hsm.clone()),
    };

    // A 1-of-1 committee: the enclave's share alone decrypts.
    let me = EvaluationPoint::new(1).unwrap();
    let committee = Committee::new([me], 1).unwrap();
    let session = SessionId([5; 32]);
    let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
    let crs = synod_he::crp::CommonRandomness::new(&params, session.0);
    let (mut e, server) = serve(dir.path(), "first", config.clone());
    let share = e
        .generate_key_share(&SessionSetup {
            session,
            parameter_set: ParameterSet::InsecureTestN2048,
            plaintext_bits: 20,
            me,
            committee: committee.clone(),
        })
        .unwrap();
    let pk = synod_he::keygen::aggregate_public_key(&params, &crs, &[me], [share]).unwrap();
    let context = MessageContext {
        session,
        epoch: Epoch(0),
        protocol: ProtocolName::Thresholdize,
        round: Round(1),
        sender: ParticipantId::try_from(1).unwrap(),
        recipient: Recipient::Participant(ParticipantId::try_from(1).unwrap()),
        sequence: SequenceNumber(1),
    };
    let to = SealedRecipient {
        point: me,
        transport_key: e.transport_key().unwrap(),
        context,
    };
    let dealt = e.deal_thresholdization(&[to]).unwrap();
    e.receive_thresholdization(
        dealt
            .into_iter()
            .map(|(_, sealed)| IncomingSubShare { context, sealed })
            .collect(),
    )
    .unwrap();
    // Blobs sealed through the API use the HSM root too.
    let blob = e.seal(&KeyId::new("note").unwrap(), b"hello").unwrap();
    assert_eq!(
        SealedHeader::parse(&blob.0).unwrap().0.source,
        KeySource::HsmWrapped
    );
    e.shutdown().unwrap();
    server.join().unwrap().unwrap();

    let share_file = dir.path().join("state").join(SEALED_SHARE_FILE);
    let sealed = std::fs::read(&share_file).unwrap();
    let (header, _, _) = SealedHeader::parse(&sealed).unwrap();
    assert_eq!(header.source, KeySource::HsmWrapped);
    assert_eq!(header.wrapped_key.len(), 40); // RFC 5649: 32 bytes + 8

    // Restarted with the same token: the share is back and decrypts.
    let (mut e, server) = serve(dir.path(), "again", config.clone());
    let values = [1i64, -2, 3000];
    let ct = synod_he::encoding::encrypt_signed(&params, pk.key(), &values, &mut rand::rng())
        .unwrap()
        .remove(0);
    let set = ActiveSet::new(&committee, [me]).unwrap();
    let flooding = Flooding::new(&params, 0, 20.0, 16, 1).unwrap();
    let ds = e
        .decryption_share(&set, &ciphertext_bytes(&ct), &flooding)
        .unwrap();
    let pt = synod_he::decrypt::combine(&params, &ct, &set, vec![ds]).unwrap();
    assert_eq!(
        &synod_he::encoding::decode_signed(&params, &pt).unwrap()[..3],
        &values
    );
    e.shutdown().unwrap();
    server.join().unwrap().unwrap();

    // Without the token (the platform seed alone), or with a wrong PIN, the share stays sealed.
    let no_hsm = SimConfig {
        hsm: None,
        ..config.clone()
    };
    let err = SimulatedEnclave::new(&no_hsm).unwrap_err();
    assert!(
        err.to_string().contains("cannot recover the key share"),
        "{err}"
    );
    let wrong_pin = dir.path().join("wrong-pin");
    std::fs::write(&wrong_pin, "00000000\n").unwrap();
    let bad = SimConfig {
        hsm: Some(SimHsm {
            pin_file: wrong_pin,
            ..hsm
        }),
        ..config.clone()
    };
    assert!(SimulatedEnclave::new(&bad).is_err());
    // A tampered wrapped data key fails (SoftHSM may call it a general error: assert failure).
    let mut tampered = sealed.clone();
    let aad_len = SealedHeader::parse(&sealed).unwrap().1.len();
    let offset = aad_len - 12 - 40 + 5; // inside the wrapped key, before the nonce
    tampered[offset] ^= 1;
    std::fs::write(&share_file, &tampered).unwrap();
    assert!(SimulatedEnclave::new(&config).is_err());
}
