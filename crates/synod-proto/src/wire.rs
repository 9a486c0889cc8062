//! The byte format shared by every wire type: postcard, with fixed-size byte arrays written as
//! exactly their bytes and byte strings as a varint length then the bytes, and the one error type
//! for turning untrusted bytes into values.
//!
//! Decoding reads from the given slice only (no preallocation beyond what the input holds), refuses
//! trailing bytes, and reports every failure as a [`WireError`]; nothing here panics on input.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::context::ContextDecodeError;

/// Why bytes could not be turned into a wire value (or, rarely, a value into bytes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The serialiser failed. Not expected for synod's own types; kept typed rather than a panic.
    #[error("could not encode {what}: {source}")]
    Encode {
        /// The type being encoded.
        what: &'static str,
        /// postcard's error.
        source: postcard::Error,
    },
    /// The bytes are not a well-formed encoding (truncated, bad varint, bad enum tag, …).
    #[error("malformed {what}: {source}")]
    Malformed {
        /// The type being decoded.
        what: &'static str,
        /// postcard's error.
        source: postcard::Error,
    },
    /// A complete value was read but bytes were left over.
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes {
        /// The type being decoded.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// The embedded message context is invalid.
    #[error("invalid message context: {0}")]
    Context(#[from] ContextDecodeError),
    /// A public key is not a valid key of its kind.
    #[error("invalid {what}")]
    InvalidKey {
        /// Which kind of key.
        what: &'static str,
    },
}

/// Serialises `value` with postcard.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    what: &'static str,
) -> Result<Vec<u8>, WireError> {
    postcard::to_allocvec(value).map_err(|source| WireError::Encode { what, source })
}

/// Serialises a **secret** `value` with postcard into a buffer that is
/// zeroized when dropped, and so is every smaller buffer the encoding
/// outgrew: `postcard::to_stdvec` grows its `Vec` by reallocation, which
/// frees each outgrown copy of the bytes without clearing it. For the
/// plaintext of a sealed message and for state about to be sealed.
pub fn encode_secret<T: Serialize + ?Sized>(
    value: &T,
    what: &'static str,
) -> Result<Zeroizing<Vec<u8>>, WireError> {
    postcard::serialize_with_flavor(value, ZeroizingVec::default())
        .map_err(|source| WireError::Encode { what, source })
}

/// A postcard output whose every buffer is zeroized on drop.
#[derive(Default)]
struct ZeroizingVec(Zeroizing<Vec<u8>>);

impl ZeroizingVec {
    /// Room for `extra` more bytes: a bigger buffer (at least double)
    /// takes the bytes, and the old one is zeroized as it is dropped.
    fn reserve(&mut self, extra: usize) {
        let (len, capacity) = (self.0.len(), self.0.capacity());
        if capacity - len < extra {
            let wanted = (len + extra).max(2 * capacity).max(64);
            let mut bigger = Zeroizing::new(Vec::with_capacity(wanted));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger;
        }
    }
}

impl postcard::ser_flavors::Flavor for ZeroizingVec {
    type Output = Zeroizing<Vec<u8>>;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.reserve(data.len());
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.reserve(1);
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Self::Output> {
        Ok(self.0)
    }
}

/// Deserialises exactly one `T` from `bytes`, refusing trailing bytes.
pub(crate) fn decode_exact<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<T, WireError> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|source| WireError::Malformed { what, source })?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(WireError::TrailingBytes {
            what,
            count: rest.len(),
        })
    }
}

/// serde for `[u8; N]` of any `N` (serde's own impls stop at 32): a tuple of exactly `N` bytes,
/// which postcard writes as the raw bytes with no length prefix.
pub(crate) mod fixed {
    use std::fmt;

    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(N)?;
        for byte in bytes {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        struct FixedVisitor<const N: usize>;

        impl<'de, const N: usize> Visitor<'de> for FixedVisitor<N> {
            type Value = [u8; N];

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} bytes")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                let mut out = [0u8; N];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }

            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<[u8; N], E> {
                <[u8; N]>::try_from(v).map_err(|_| E::invalid_length(v.len(), &self))
            }
        }

        deserializer.deserialize_tuple(N, FixedVisitor::<N>)
    }
}

/// serde for a variable-length byte string, written with `serialize_bytes` (postcard: varint
/// length, then the bytes) rather than as a sequence of integers.
pub(crate) mod byte_vec {
    use std::fmt;

    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    /// Upper bound on what a sequence's size hint may make us preallocate: the hint comes from
    /// untrusted input.
    const MAX_PREALLOCATION: usize = 4096;

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        struct BytesVisitor;

        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Vec<u8>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }

            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let hint = seq.size_hint().unwrap_or(0).min(MAX_PREALLOCATION);
                let mut out = Vec::with_capacity(hint);
                while let Some(byte) = seq.next_element()? {
                    out.push(byte);
                }
                Ok(out)
            }
        }

        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Serialize)]
    struct Mixed {
        tag: u8,
        #[serde(serialize_with = "byte_vec::serialize")]
        blob: Vec<u8>,
        words: Vec<u64>,
        name: String,
    }

    /// The zeroizing encoder writes exactly postcard's bytes, small or
    /// grown many times over (bytes pushed one by one and in slices).
    #[test]
    fn secret_encoding_is_postcards() {
        for size in [0usize, 1, 63, 64, 65, 1000, 300_000] {
            let value = Mixed {
                tag: 7,
                blob: (0..size).map(|i| (i * 31 % 251) as u8).collect(),
                words: (0..size as u64 / 3)
                    .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                    .collect(),
                name: "x".repeat(size % 97),
            };
            let secret = encode_secret(&value, "test").unwrap();
            assert_eq!(
                *secret,
                postcard::to_allocvec(&value).unwrap(),
                "size {size}"
            );
        }
    }
}
