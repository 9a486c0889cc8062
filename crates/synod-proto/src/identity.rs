//! Participant identity keys: Ed25519 (RFC 8032) via `ed25519-dalek`.
//!
//! An identity key signs only [`SignedEnvelope`](crate::SignedEnvelope)s, so every signature in
//! synod binds a [`MessageContext`](crate::MessageContext); there is deliberately no public
//! "sign these bytes". Verification is `verify_strict` (no malleable signatures, no small-order
//! keys).
//!
//! `ed25519-dalek` 2 speaks `rand_core` 0.6 while the workspace uses `rand` 0.9, so keys are made
//! from 32 bytes drawn from the caller's `rand` 0.9 RNG (`SigningKey::from_bytes`), which is exactly
//! how RFC 8032 defines key generation; no RNG adapter is needed.

use std::fmt;

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::CryptoRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::wire::{fixed, WireError};

/// A participant's secret identity key. Zeroized on drop, redacted in `Debug`, never serialised
/// (store it only through [`secret_bytes`](Self::secret_bytes) into a sealed envelope).
pub struct IdentityKey(SigningKey);

// `SigningKey` zeroizes its secret scalar and seed on drop (ed25519-dalek's `zeroize` feature,
// enabled in the workspace manifest), and it is the only field.
impl ZeroizeOnDrop for IdentityKey {}

impl IdentityKey {
    /// A fresh key from 32 random bytes.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_secret_bytes(&seed)
    }

    /// The key with the given RFC 8032 secret seed.
    pub fn from_secret_bytes(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The RFC 8032 secret seed, for sealing into storage only.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> IdentityPublicKey {
        IdentityPublicKey(self.0.verifying_key())
    }

    /// Signs `message`. Crate-private: callers sign envelopes, which bind a context.
    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer as _;
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("public", &self.public_key())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A participant's public identity key: a valid, non-small-order Ed25519 point.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityPublicKey(VerifyingKey);

impl IdentityPublicKey {
    /// Parses a 32-byte compressed Edwards point, refusing invalid and small-order ("weak") keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        const WHAT: &str = "Ed25519 identity public key";
        let bytes =
            <[u8; 32]>::try_from(bytes).map_err(|_| WireError::InvalidKey { what: WHAT })?;
        let key =
            VerifyingKey::from_bytes(&bytes).map_err(|_| WireError::InvalidKey { what: WHAT })?;
        if key.is_weak() {
            return Err(WireError::InvalidKey { what: WHAT });
        }
        Ok(Self(key))
    }

    /// The 32-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Whether `signature` is a valid strict Ed25519 signature on `message` under this key.
    pub(crate) fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublicKey({})", hex::encode(self.to_bytes()))
    }
}

impl Serialize for IdentityPublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fixed::serialize(&self.to_bytes(), serializer)
    }
}

impl<'de> Deserialize<'de> for IdentityPublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: [u8; 32] = fixed::deserialize(deserializer)?;
        Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 signature (64 bytes). Its validity is only known against a key and a message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "fixed")] pub(crate) [u8; 64]);

impl Signature {
    /// The signature from its 64 bytes.
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// The 64 bytes.
    pub const fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let key = IdentityKey::from_secret_bytes(&[0x42; 32]);
        let debug = format!("{key:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains(&hex::encode([0x42; 32])));
        assert!(!debug.contains("66, 66"));
    }

    #[test]
    fn secret_bytes_round_trip_and_generate_differs() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let a = IdentityKey::generate(&mut rng);
        let b = IdentityKey::generate(&mut rng);
        assert_ne!(a.public_key(), b.public_key());
        let again = IdentityKey::from_secret_bytes(&a.secret_bytes());
        assert_eq!(again.public_key(), a.public_key());
    }

    #[test]
    fn sign_verify_and_wrong_key_or_message_fails() {
        let key = IdentityKey::from_secret_bytes(&[1; 32]);
        let other = IdentityKey::from_secret_bytes(&[2; 32]);
        let sig = key.sign(b"message");
        assert!(key.public_key().verify(b"message", &sig));
        assert!(!key.public_key().verify(b"messagf", &sig));
        assert!(!other.public_key().verify(b"message", &sig));
    }

    #[test]
    fn public_key_parsing_refuses_bad_lengths_and_weak_points() {
        let pk = IdentityKey::from_secret_bytes(&[1; 32]).public_key();
        assert_eq!(IdentityPublicKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
        assert!(IdentityPublicKey::from_bytes(&[0; 31]).is_err());
        // The identity point (y = 1) is small-order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(IdentityPublicKey::from_bytes(&identity).is_err());
        let bytes = postcard::to_allocvec(&pk).unwrap();
        assert_eq!(bytes.len(), 32);
        assert_eq!(
            postcard::from_bytes::<IdentityPublicKey>(&bytes).unwrap(),
            pk
        );
        assert!(postcard::from_bytes::<IdentityPublicKey>(&identity).is_err());
    }
}
