//! Sealing with data keys wrapped by a non-extractable AES key in a PKCS#11 token, against
//! SoftHSM2 with a token initialised in a temporary directory (SOFTHSM2_CONF). When `CI=true` a
//! missing SoftHSM fails the test; elsewhere the test says plainly that it did not run.
//! SoftHSM reports several failures as a general error, so failures are asserted, not their kind.

#![cfg(feature = "hsm")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use synod_tee::hsm::{HsmConfig, HsmKeyWrapper};
use synod_tee::seal::{KeySource, SealedHeader};
use synod_tee::{KeyId, SealedBlob, Sealer};

const TOKEN: &str = "synod-test-token";

#[test]
fn sealing_keys_wrapped_by_softhsm() {
    // The only test in this binary: it may point this process at its own token.
    let Some(hsm) = common::softhsm::process_token("the HSM test", TOKEN) else {
        return;
    };
    let config =
        HsmConfig::with_pin_file(&hsm.module, TOKEN, &hsm.token.pin_file, "synod-sealing").unwrap();

    let measurement = vec![0x42; 48];
    let id = KeyId::new("share").unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let blob = {
        let wrapper = HsmKeyWrapper::open(&config).unwrap();
        // The wrapping key never leaves the token.
        assert!(!wrapper.wrapping_key_extractable().unwrap());
        assert!(wrapper.try_read_wrapping_key().is_err());
        let mut sealer = Sealer::new(Box::new(wrapper), measurement.clone(), 2).unwrap();
        let blob = sealer.seal(&id, b"key share bytes", &mut rng).unwrap();
        let (header, _, _) = SealedHeader::parse(&blob.0).unwrap();
        assert_eq!(header.source, KeySource::HsmWrapped);
        assert_eq!(header.wrapped_key.len(), 40); // RFC 5649: 32 bytes + 8
        let (_, pt) = sealer.unseal(&blob).unwrap();
        assert_eq!(pt.as_slice(), b"key share bytes");

        // A tampered wrapped key fails (SoftHSM may call it a general error: assert failure).
        let mut bad = blob.0.clone();
        let offset = blob.0.len() - (15 + 16 + 12 + 40) + 5;
        bad[offset] ^= 1;
        assert!(sealer.unseal(&SealedBlob(bad)).is_err());
        // Another measurement cannot unseal it.
        let other = HsmKeyWrapper::open(&config).unwrap();
        let mut other = Sealer::new(Box::new(other), vec![0x43; 48], 2).unwrap();
        assert!(other.unseal(&blob).is_err());
        blob
    };

    // The wrapping key persists in the token: a new session finds it by label and unseals.
    let wrapper = HsmKeyWrapper::open(&config).unwrap();
    let mut sealer = Sealer::new(Box::new(wrapper), measurement, 2).unwrap();
    assert_eq!(
        sealer.unseal(&blob).unwrap().1.as_slice(),
        b"key share bytes"
    );

    drop(sealer);

    // Wrong PIN, wrong token label: refused (every earlier session is closed, so no login
    // state of this process remains).
    let wrong_pin = HsmConfig {
        pin: "00000000".to_string().into(),
        ..config.clone()
    };
    assert!(HsmKeyWrapper::open(&wrong_pin).is_err());
    let wrong_label = HsmConfig {
        token_label: "no-such-token".into(),
        ..config
    };
    assert!(HsmKeyWrapper::open(&wrong_label).is_err());
}
