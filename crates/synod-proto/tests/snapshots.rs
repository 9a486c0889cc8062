//! Snapshots of every wire format: fixed inputs, committed bytes.
//!
//! A failure here means bytes on the wire (or under a signature, or in a transcript) changed, so
//! peers running the previous build would no longer interoperate. If the change is intended, bump
//! `PROTOCOL_VERSION` where the change is visible to peers and regenerate: run
//!
//! ```text
//! cargo test -p synod-proto --test snapshots
//! ```
//!
//! and copy each failing test's `actual` hex (printed in the assertion message) over its expected
//! value. Values that are also published test vectors (RFC 8032, RFC 7748) must never change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use synod_proto::{
    open, seal, Epoch, ExpectedContext, IdentityKey, IdentityPublicKey, MessageContext,
    ParticipantId, ProtocolName, Recipient, Round, RoundHash, SealedPayload, SequenceNumber,
    SessionId, SignedEnvelope, Transcript, TransportKey, TransportPublicKey,
};

fn check(name: &str, actual: &[u8], expected_hex: &str) {
    let actual = hex::encode(actual);
    assert_eq!(
        actual, expected_hex,
        "snapshot {name} changed; actual = \"{actual}\""
    );
}

fn p(n: u32) -> ParticipantId {
    ParticipantId::new(n).unwrap()
}

fn session() -> SessionId {
    "5e5510aa000102030405060708090a0b0c0d0e0f101112131415161718191a1b"
        .parse()
        .unwrap()
}

fn broadcast_context() -> MessageContext {
    MessageContext {
        session: session(),
        epoch: Epoch(0),
        protocol: ProtocolName::PublicKeyGen,
        round: Round(1),
        sender: p(1),
        recipient: Recipient::Broadcast,
        sequence: SequenceNumber(0),
    }
}

fn direct_context() -> MessageContext {
    MessageContext {
        session: session(),
        epoch: Epoch(0x0102_0304_0506_0708),
        protocol: ProtocolName::Reshare,
        round: Round(0xfffe),
        sender: p(0xdead_beef),
        recipient: Recipient::Participant(p(42)),
        sequence: SequenceNumber(u64::MAX),
    }
}

/// RFC 8032 §7.1 TEST 1 secret key.
const RFC8032_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn identity_key() -> IdentityKey {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(RFC8032_SECRET, &mut seed).unwrap();
    IdentityKey::from_secret_bytes(&seed)
}

/// RFC 7748 §6.1: Bob's private key.
const RFC7748_BOB_SECRET: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";

fn transport_key() -> TransportKey {
    let mut secret = [0u8; 32];
    hex::decode_to_slice(RFC7748_BOB_SECRET, &mut secret).unwrap();
    TransportKey::from_secret_bytes(&secret).unwrap()
}

fn envelope() -> SignedEnvelope {
    SignedEnvelope::sign(
        &identity_key(),
        broadcast_context(),
        Transcript::new(session()).round_hash(),
        b"round 1 payload".to_vec(),
    )
}

#[test]
fn context_encodings() {
    check(
        "broadcast context",
        &broadcast_context().encode(),
        "73796e6f642f6374782f763100085e5510aa000102030405060708090a0b0c0d0e0f101112131415161718191a1b000000000000000001000100000001000000000000000000000000",
    );
    check("direct context", &direct_context().encode(), "73796e6f642f6374782f763100085e5510aa000102030405060708090a0b0c0d0e0f101112131415161718191a1b010203040506070808fffedeadbeef0000002affffffffffffffff");
    // postcard writes a context as exactly its canonical encoding.
    let wire = postcard::to_allocvec(&direct_context()).unwrap();
    assert_eq!(wire, direct_context().encode());
}

#[test]
fn identifier_encodings() {
    let all = (
        p(300),
        session(),
        Epoch(300),
        ProtocolName::ALL,
        Round(300),
        [Recipient::Broadcast, Recipient::Participant(p(2))],
        SequenceNumber(300),
    );
    check("identifiers", &postcard::to_allocvec(&all).unwrap(), "ac025e5510aa000102030405060708090a0b0c0d0e0f101112131415161718191a1bac020102030405060708ac02000102ac02");
}

#[test]
fn identity_public_key_is_the_rfc8032_vector() {
    let pk = identity_key().public_key();
    // RFC 8032 §7.1 TEST 1 public key: a published vector, not a snapshot.
    check(
        "identity public key",
        &pk.to_bytes(),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    );
    assert_eq!(postcard::to_allocvec(&pk).unwrap(), pk.to_bytes());
    assert_eq!(IdentityPublicKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
}

#[test]
fn transport_public_key_is_the_rfc7748_vector() {
    let pk = *transport_key().public_key();
    // RFC 7748 §6.1: Bob's public key.
    check(
        "transport public key",
        &pk.to_bytes(),
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    );
    assert_eq!(postcard::to_allocvec(&pk).unwrap(), pk.to_bytes());
    assert_eq!(TransportPublicKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
}

#[test]
fn generated_keys_from_a_seed() {
    // Key generation draws 32 bytes and applies RFC 8032 / RFC 9180 DeriveKeyPair; a change here
    // means keys generated from the same seed differ between builds.
    let mut rng = ChaCha20Rng::seed_from_u64(2024);
    let identity = IdentityKey::generate(&mut rng);
    let transport = TransportKey::generate(&mut rng);
    check(
        "generated identity key",
        &identity.public_key().to_bytes(),
        "75a756724565f5b0be4fa40c671ce2a647e2edfa12a8f6737226e2f32cf7b10b",
    );
    check(
        "generated transport key",
        &transport.public_key().to_bytes(),
        "c294c922d1b9e273fd8be6cf994016ce898a4c0fc277a3dfce29116b6468bf54",
    );
}

#[test]
fn signed_envelope_encoding() {
    // Ed25519 is deterministic, so the whole envelope, signature included, is fixed.
    let env = envelope();
    let bytes = env.to_bytes().unwrap();
    check(
        "signed envelope",
        &bytes,
        concat!(
            // context: its 73-byte canonical encoding, no length prefix
            "73796e6f642f6374782f763100085e5510aa000102030405060708090a0b0c0d0e0f101112131415161718191a1b000000000000000001000100000001000000000000000000000000",
            // payload: varint length 15, then b"round 1 payload"
            "0f726f756e642031207061796c6f6164",
            // prev_round_hash: the genesis round hash of the session
            "20e2ba2066d2c7cc69fa2b64cd70bb85c4d36eb505376c5e11a023ba0cc677de",
            // Ed25519 signature (64 bytes)
            "6510a88f9f14651504b67cc1f085e4390c9253c38f605aea746b9ad1b8b78ddd4bbb42ec27c4dcbfe988bc7a975dff9e722aa75490642d459a541756ebf07b09",
        ),
    );
    check(
        "signed envelope digest",
        &env.digest(),
        "12c0a45a504299355f9179130e519a53c265ebfb3b4b0b4ae86a583200bdf870",
    );
    let back = SignedEnvelope::from_bytes(&bytes).unwrap();
    assert_eq!(back, env);
    let expected = ExpectedContext {
        session: session(),
        epoch: Epoch(0),
        protocol: ProtocolName::PublicKeyGen,
        round: Round(1),
        sender: p(1),
        recipient: Recipient::Broadcast,
        prev_round_hash: Transcript::new(session()).round_hash(),
    };
    back.verify(&expected, &identity_key().public_key())
        .unwrap();
}

#[test]
fn transcript_hashes() {
    let mut transcript = Transcript::new(session());
    check(
        "genesis round hash",
        transcript.round_hash().as_bytes(),
        "20e2ba2066d2c7cc69fa2b64cd70bb85c4d36eb505376c5e11a023ba0cc677de",
    );
    transcript
        .record(&direct_context(), b"a direct message")
        .unwrap();
    transcript.record_envelope(&envelope()).unwrap();
    let round_1 = transcript.end_round();
    check(
        "round 1 hash",
        round_1.as_bytes(),
        "637a149486c483261d2531384517d248b70fd36078844790213d8cbce7a787c6",
    );
    let round_2 = transcript.end_round();
    check(
        "empty round 2 hash",
        round_2.as_bytes(),
        "0d681a4a085d1a8cf36923c214fc3c090d907192e859a2ef24783643c5282b76",
    );
    assert_eq!(
        postcard::to_allocvec(&round_2).unwrap(),
        round_2.as_bytes().to_vec()
    );
    let _: RoundHash = round_2;
}

#[test]
fn sealed_payload_framing() {
    let sealed = SealedPayload {
        encapped_key: [0xee; 32],
        ciphertext: vec![0xc0; 20],
    };
    check("sealed payload framing", &sealed.to_bytes().unwrap(), "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee14c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0");
}

/// A payload sealed once and committed, made with
/// `seal(&direct_context(), transport_key().public_key(), b"a share for P42", &mut ChaCha20Rng::seed_from_u64(7748))`
/// and `SealedPayload::to_bytes` (regenerate the same way). HPKE ciphertexts are
/// randomised, so rather than comparing new ciphertexts this checks that the committed one still
/// opens under the same key and context: the KEM, KDF, AEAD, `info` and AAD are unchanged.
const COMMITTED_SEALED: &str = "9ab4be0a22bd07f73b4f9867dbc6775ff83d0e995ce3306ab8221dc32339ce321f1f45ff02424b7cdb1a1d0823d2bbf977bf88bedc7765f9275e87ea005c46bf";

#[test]
fn committed_sealed_payload_still_opens() {
    let key = transport_key();
    let ctx = direct_context();
    let sealed = SealedPayload::from_bytes(&hex::decode(COMMITTED_SEALED).unwrap()).unwrap();
    assert_eq!(&open(&ctx, &key, &sealed).unwrap()[..], b"a share for P42");
    assert!(open(&broadcast_context(), &key, &sealed).is_err());
    // A fresh sealing is randomised, so it is not compared with the committed one, only opened.
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let fresh = seal(&ctx, key.public_key(), b"a share for P42", &mut rng).unwrap();
    assert_ne!(fresh, sealed);
    assert_eq!(&open(&ctx, &key, &fresh).unwrap()[..], b"a share for P42");
}
