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

mod common;

use synod_he::Committee;
use synod_proto::SessionId;
use synod_tee::seal::{KeySource, SealedHeader};
use synod_tee::sim::{
    EnclaveClient, SimConfig, SimHsm, SimulatedEnclave, DEFAULT_HSM_KEY_LABEL, SEALED_SHARE_FILE,
};
use synod_tee::{Enclave, KeyId};

const TOKEN: &str = "synod-sim-token";

#[test]
fn simulated_enclave_seals_its_share_under_an_hsm_wrapped_key() {
    // The only test in this binary: it may point this process at its own token.
    let Some(token) = common::softhsm::process_token("the simulated-enclave HSM test", TOKEN)
    else {
        return;
    };
    let dir = &token.dir;
    let hsm = SimHsm {
        module: token.module.clone(),
        token_label: TOKEN.into(),
        pin_file: token.token.pin_file.clone(),
        key_label: DEFAULT_HSM_KEY_LABEL.into(),
    };
    let config = SimConfig {
        state_dir: Some(dir.path().join("state")),
        hsm: Some(hsm.clone()),
        ..common::sim::config(dir.path())
    };
    let serve = |name: &str| {
        let (socket, server) = common::sim::start(dir.path(), name, config.clone());
        (EnclaveClient::connect(&socket).unwrap(), server)
    };

    // A 1-of-1 committee: the enclave's share alone decrypts.
    let points = common::points([1]);
    let committee = Committee::new(points.clone(), 1).unwrap();
    let session = SessionId([5; 32]);
    let (mut e, server) = serve("first");
    let pk = common::generate_keys(std::slice::from_mut(&mut e), &points, &committee, session);
    common::thresholdize(std::slice::from_mut(&mut e), &points, session);
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
    let (mut e, server) = serve("again");
    common::assert_decrypts(
        &pk,
        &committee,
        std::slice::from_mut(&mut e),
        &points,
        &points,
        &[1, -2, 3000],
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
