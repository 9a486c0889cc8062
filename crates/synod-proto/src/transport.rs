//! Transport encryption of payloads to one participant: HPKE (RFC 9180) base mode, single shot,
//! with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305, via the `hpke` crate.
//!
//! The associated data is exactly [`MessageContext::encode`], so a sealed payload opens only under
//! the context it was sealed for: moving it to another session, epoch, protocol, round, sender,
//! recipient or sequence number makes [`open`] fail. The HPKE `info` string is a fixed
//! domain-separation label.
//!
//! `hpke` 0.13 uses `rand_core` 0.9, the same as the workspace's `rand` 0.9, so callers' RNGs are
//! passed straight through; no adapter is needed.

use std::fmt;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::context::MessageContext;
use crate::wire::{self, byte_vec, fixed, WireError};

type Kem = X25519HkdfSha256;
type Kdf = HkdfSha256;
type Aead = ChaCha20Poly1305;
type HpkePrivateKey = <Kem as hpke::Kem>::PrivateKey;
type HpkePublicKey = <Kem as hpke::Kem>::PublicKey;
type HpkeEncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// HPKE `info`: names the use, so these keys' ciphertexts cannot be confused with any other HPKE
/// use of the same keys.
const HPKE_INFO: &[u8] = b"synod/hpke/v1 transport";

/// Why sealing or opening failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Encapsulation to the recipient's key failed (e.g. a small-order public key).
    #[error("could not seal to the recipient's transport key")]
    Seal,
    /// Decryption failed: wrong key, wrong context, or altered ciphertext.
    #[error("could not open the sealed payload (wrong key, wrong context or altered)")]
    Open,
}

/// A participant's secret X25519 transport key. Zeroized on drop, redacted in `Debug`, never
/// serialised.
#[derive(Clone)]
pub struct TransportKey {
    secret: HpkePrivateKey,
    public: TransportPublicKey,
}

// The secret is an `x25519_dalek::StaticSecret`, which zeroizes itself on drop (x25519-dalek's
// default `zeroize` feature, which `hpke` keeps on); the public part is not secret.
impl ZeroizeOnDrop for TransportKey {}

impl TransportKey {
    /// A fresh key: RFC 9180 `DeriveKeyPair` on 32 random bytes.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ikm.as_mut());
        let (secret, public) = Kem::derive_keypair(ikm.as_ref());
        Self {
            secret,
            public: TransportPublicKey(public.to_bytes().into()),
        }
    }

    /// The key with the given 32-byte X25519 secret (as returned by
    /// [`secret_bytes`](Self::secret_bytes)). Any 32 bytes are a valid (clamped) scalar; the
    /// error exists only because the `hpke` API is fallible.
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<Self, WireError> {
        let secret = HpkePrivateKey::from_bytes(bytes).map_err(|_| WireError::InvalidKey {
            what: "X25519 transport secret key",
        })?;
        let public = Kem::sk_to_pk(&secret);
        Ok(Self {
            secret,
            public: TransportPublicKey(public.to_bytes().into()),
        })
    }

    /// The 32-byte X25519 secret, for sealing into storage only.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        // Writes straight into the zeroizing buffer (no intermediate copy); the length is the
        // key's size, 32, as `write_exact` requires.
        self.secret.write_exact(out.as_mut());
        out
    }

    /// The matching public key.
    pub fn public_key(&self) -> &TransportPublicKey {
        &self.public
    }
}

impl fmt::Debug for TransportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportKey")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A participant's public X25519 transport key (32 bytes), as registered and attested.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransportPublicKey(#[serde(with = "fixed")] [u8; 32]);

impl TransportPublicKey {
    /// Parses a 32-byte X25519 public key. (A small-order key is caught when sealing: HPKE refuses
    /// an all-zero shared secret.)
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| WireError::InvalidKey {
                what: "X25519 transport public key",
            })
    }

    /// The 32 bytes.
    pub const fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Debug for TransportPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransportPublicKey({})", hex::encode(self.0))
    }
}

/// An HPKE-sealed payload: the encapsulated key and the AEAD ciphertext (with its tag).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SealedPayload {
    /// The sender's ephemeral X25519 public key (`enc` in RFC 9180).
    #[serde(with = "fixed")]
    pub encapped_key: [u8; 32],
    /// ChaCha20-Poly1305 ciphertext followed by its 16-byte tag.
    #[serde(with = "byte_vec")]
    pub ciphertext: Vec<u8>,
}

impl SealedPayload {
    /// The wire encoding: postcard of (encapped key, ciphertext).
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        wire::encode(self, "sealed payload")
    }

    /// Parses the wire encoding, refusing malformed input and trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        wire::decode_exact(bytes, "sealed payload")
    }
}

/// Encrypts `plaintext` to `recipient` for `context` (the associated data).
pub fn seal<R: CryptoRng + ?Sized>(
    context: &MessageContext,
    recipient: &TransportPublicKey,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<SealedPayload, TransportError> {
    let recipient = HpkePublicKey::from_bytes(&recipient.0).map_err(|_| TransportError::Seal)?;
    let (encapped_key, ciphertext) = hpke::single_shot_seal::<Aead, Kdf, Kem, _>(
        &OpModeS::Base,
        &recipient,
        HPKE_INFO,
        plaintext,
        &context.encode(),
        &mut &mut *rng,
    )
    .map_err(|_| TransportError::Seal)?;
    Ok(SealedPayload {
        encapped_key: encapped_key.to_bytes().into(),
        ciphertext,
    })
}

/// Decrypts `sealed` with `key`, under exactly the `context` it was sealed for.
pub fn open(
    context: &MessageContext,
    key: &TransportKey,
    sealed: &SealedPayload,
) -> Result<Zeroizing<Vec<u8>>, TransportError> {
    let encapped_key =
        HpkeEncappedKey::from_bytes(&sealed.encapped_key).map_err(|_| TransportError::Open)?;
    hpke::single_shot_open::<Aead, Kdf, Kem>(
        &OpModeR::Base,
        &key.secret,
        &encapped_key,
        HPKE_INFO,
        &sealed.ciphertext,
        &context.encode(),
    )
    .map(Zeroizing::new)
    .map_err(|_| TransportError::Open)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;
    use crate::context::tests::{one_field_changes, sample_context};

    #[test]
    fn seal_then_open() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let key = TransportKey::generate(&mut rng);
        let ctx = sample_context();
        let sealed = seal(&ctx, key.public_key(), b"a share", &mut rng).unwrap();
        assert_eq!(sealed.ciphertext.len(), b"a share".len() + 16);
        assert_eq!(&open(&ctx, &key, &sealed).unwrap()[..], b"a share");
        // Randomised: sealing twice gives different ciphertexts.
        let again = seal(&ctx, key.public_key(), b"a share", &mut rng).unwrap();
        assert_ne!(again, sealed);
    }

    #[test]
    fn open_fails_under_any_other_context() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let key = TransportKey::generate(&mut rng);
        let ctx = sample_context();
        let sealed = seal(&ctx, key.public_key(), b"secret", &mut rng).unwrap();
        for (name, changed) in one_field_changes(&ctx) {
            assert_eq!(
                open(&changed, &key, &sealed),
                Err(TransportError::Open),
                "{name}"
            );
        }
    }

    #[test]
    fn open_fails_with_the_wrong_key_or_altered_ciphertext() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let key = TransportKey::generate(&mut rng);
        let other = TransportKey::generate(&mut rng);
        let ctx = sample_context();
        let sealed = seal(&ctx, key.public_key(), b"secret", &mut rng).unwrap();
        assert_eq!(open(&ctx, &other, &sealed), Err(TransportError::Open));
        let mut altered = sealed.clone();
        altered.ciphertext[0] ^= 1;
        assert_eq!(open(&ctx, &key, &altered), Err(TransportError::Open));
        let mut altered = sealed.clone();
        altered.encapped_key[0] ^= 1;
        assert_eq!(open(&ctx, &key, &altered), Err(TransportError::Open));
        let mut truncated = sealed;
        truncated.ciphertext.truncate(10);
        assert_eq!(open(&ctx, &key, &truncated), Err(TransportError::Open));
    }

    #[test]
    fn small_order_recipient_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let zero = TransportPublicKey::from_bytes(&[0; 32]).unwrap();
        assert_eq!(
            seal(&sample_context(), &zero, b"x", &mut rng),
            Err(TransportError::Seal)
        );
    }

    #[test]
    fn secret_bytes_round_trip_and_debug_redacts() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let key = TransportKey::generate(&mut rng);
        let again = TransportKey::from_secret_bytes(&key.secret_bytes()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let ctx = sample_context();
        let sealed = seal(&ctx, key.public_key(), b"m", &mut rng).unwrap();
        assert_eq!(&open(&ctx, &again, &sealed).unwrap()[..], b"m");
        let debug = format!("{key:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains(&hex::encode(*key.secret_bytes())));
    }

    #[test]
    fn sealed_payload_wire_round_trip_and_errors() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let key = TransportKey::generate(&mut rng);
        let sealed = seal(&sample_context(), key.public_key(), b"abc", &mut rng).unwrap();
        let bytes = sealed.to_bytes().unwrap();
        assert_eq!(bytes.len(), 32 + 1 + 3 + 16);
        assert_eq!(SealedPayload::from_bytes(&bytes).unwrap(), sealed);
        let mut trailing = bytes.clone();
        trailing.push(1);
        assert!(matches!(
            SealedPayload::from_bytes(&trailing),
            Err(WireError::TrailingBytes { .. })
        ));
        assert!(matches!(
            SealedPayload::from_bytes(&bytes[..40]),
            Err(WireError::Malformed { .. })
        ));
        assert!(TransportPublicKey::from_bytes(&[0; 33]).is_err());
    }

    proptest! {
        #[test]
        fn sealed_payload_from_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(sealed) = SealedPayload::from_bytes(&bytes) {
                prop_assert_eq!(sealed.to_bytes().unwrap(), bytes);
            }
        }
    }
}
