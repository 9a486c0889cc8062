//! The serialised form of a residue vector: bit-packed at the width of its
//! largest residue (≈ 44 bits for the N = 8192 primes), little-endian, with
//! the count and width in front. About 5.5 bytes per residue instead of 8 (or
//! ~6.3 for varints), and an encoder and decoder of about two nanoseconds per
//! residue on the development VM. Decoding checks
//! the width and the length and never panics on hostile bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The bytes are borrowed from the input where the deserialiser can lend
/// them (postcard from a slice), so decoding does not copy them first.
#[derive(Serialize, Deserialize)]
struct Packed<'a> {
    count: u32,
    bits: u8,
    #[serde(borrow, with = "serde_bytes")]
    bytes: std::borrow::Cow<'a, [u8]>,
}

fn packed_len(count: usize, bits: u32) -> usize {
    (count * bits as usize).div_ceil(8)
}

/// Packs `values` at `bits` bits each (`bits` in 1..=64, every value below
/// `2^bits`) into a buffer sized up front.
fn pack(values: &[u64], bits: u32) -> Vec<u8> {
    let len = packed_len(values.len(), bits);
    let mut out = vec![0u8; len.div_ceil(8) * 8];
    pack_words(values, bits, &mut out);
    out.truncate(len);
    out
}

/// Packs `values` at `bits` bits into the words of `out` (little-endian),
/// from bit 0: a 64-bit accumulator written a word at a time.
fn pack_words(values: &[u64], bits: u32, out: &mut [u8]) {
    let mut words = out.chunks_exact_mut(8);
    let mut acc: u64 = 0;
    let mut held = 0u32;
    for &v in values {
        acc |= v << held;
        let total = held + bits;
        if total >= 64 {
            if let Some(w) = words.next() {
                w.copy_from_slice(&acc.to_le_bytes());
            }
            // The bits of `v` that did not fit (none when it ended the word).
            acc = if total == 64 { 0 } else { v >> (64 - held) };
            held = total - 64;
        } else {
            held = total;
        }
    }
    if held > 0 {
        if let Some(w) = words.next() {
            w.copy_from_slice(&acc.to_le_bytes());
        }
    }
}

/// The most values one packed vector may hold: far above any parameter
/// set's `primes × N` (at most about 2^18), and low enough that a hostile
/// header (narrow values, huge count) cannot make decoding allocate more
/// than 32 MiB.
const MAX_VALUES: usize = 1 << 22;

/// Unpacks `count` values of `bits` bits; `None` if the lengths disagree or
/// `count` exceeds [`MAX_VALUES`].
/// Value `i` starts at bit `i·bits`, read without a running state from the
/// bytes at its first byte: eight of them where they lie inside `bytes` and
/// hold the value (up to 57 bits, every residue of synod's primes), else
/// sixteen, zero-padded at the end. The 64-bit window is about 2.5 times
/// as fast as the 128-bit one, whose shifts take several instructions.
fn unpack(bytes: &[u8], count: usize, bits: u32) -> Option<Vec<u64>> {
    if !(1..=64).contains(&bits) || count > MAX_VALUES || bytes.len() != packed_len(count, bits) {
        return None;
    }
    let mask = u64::MAX >> (64 - bits);
    let width = bits as usize;
    // Values whose first byte is at most `len − 8`, when they fit in eight
    // bytes from there.
    let short = match bytes.len().checked_sub(8) {
        Some(last) if bits <= 57 => count.min((8 * last + 7) / width + 1),
        _ => 0,
    };
    let mut out = Vec::with_capacity(count);
    out.extend((0..short).map(|i| {
        let bit = i * width;
        let window = bytes
            .get(bit / 8..bit / 8 + 8)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u64::from_le_bytes);
        (window >> (bit % 8)) & mask
    }));
    for i in short..count {
        let bit = i * width;
        let byte = bit / 8;
        let window = match bytes.get(byte..byte + 16) {
            Some(w) => u128::from_le_bytes(w.try_into().ok()?),
            None => {
                let mut w = [0u8; 16];
                let tail = bytes.get(byte..)?;
                w.get_mut(..tail.len())?.copy_from_slice(tail);
                u128::from_le_bytes(w)
            }
        };
        out.push((window >> (bit % 8)) as u64 & mask);
    }
    Some(out)
}

/// `serde(with)` entry point: serialise.
pub(crate) fn serialize<S: Serializer>(values: &[u64], s: S) -> Result<S::Ok, S::Error> {
    let (count, bits) = header(values)?;
    write(count, bits, &pack(values, bits), s)
}

/// [`serialize`] for **secret** residues: the same bytes, packed into a
/// buffer that is zeroized when dropped.
pub(crate) fn serialize_zeroizing<S: Serializer>(values: &[u64], s: S) -> Result<S::Ok, S::Error> {
    let (count, bits) = header(values)?;
    write(count, bits, &zeroize::Zeroizing::new(pack(values, bits)), s)
}

/// The wire form of `count` values of `bits` bits, packed in `bytes`.
fn write<S: Serializer>(count: u32, bits: u32, bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    Packed {
        count,
        bits: bits as u8,
        bytes: std::borrow::Cow::Borrowed(bytes),
    }
    .serialize(s)
}

/// The count and the bit width every value fits in (at least 1): the
/// width of the values' bitwise OR, which has the largest value's top bit
/// (one vector OR per eight values, where the widest of each value's own
/// width took a bit count and a comparison per value: 1.2 ns a value, a
/// twentieth of the demo's decryption phase, in session 22's profile).
fn header<E: serde::ser::Error>(values: &[u64]) -> Result<(u32, u32), E> {
    let bits = (64 - values.iter().fold(0, |acc, v| acc | v).leading_zeros()).max(1);
    let count = u32::try_from(values.len()).map_err(E::custom)?;
    Ok((count, bits))
}

/// `serde(with)` entry point: deserialise.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    let p = Packed::deserialize(d)?;
    unpack(&p.bytes, p.count as usize, u32::from(p.bits)).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "packed residues: {} bytes do not hold {} values of {} bits",
            p.bytes.len(),
            p.count,
            p.bits
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// Every width, with values whose top bit is set, at every bit offset
    /// within a byte that the width produces (67 values) and at the end of
    /// the buffer: the eight-byte window must take exactly the values it
    /// holds (up to 57 bits) and leave the rest, the last bytes included,
    /// to the sixteen-byte one. Fails with the window taking 59 bits (58
    /// would still be right: its offsets are even) or one value more.
    #[test]
    fn every_width_at_every_offset() {
        for bits in 1..=64u32 {
            let top = 1u64 << (bits - 1);
            let values: Vec<u64> = (0..67u64)
                .map(|i| {
                    top | i
                        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        .checked_shr(65 - bits)
                        .unwrap_or(0)
                })
                .collect();
            let bytes = pack(&values, bits);
            assert_eq!(
                unpack(&bytes, values.len(), bits).unwrap(),
                values,
                "{bits} bits"
            );
        }
    }

    proptest! {
        #[test]
        fn round_trip(values in proptest::collection::vec(any::<u64>(), 0..300), shift in 0u32..64) {
            let values: Vec<u64> = values.into_iter().map(|v| v >> shift).collect();
            let bits = values.iter().map(|v| 64 - v.leading_zeros()).max().unwrap_or(1).max(1);
            // The header takes the widest value's width (at least 1).
            let header = header::<serde::de::value::Error>(&values).unwrap();
            prop_assert_eq!(header, (values.len() as u32, bits));
            let bytes = pack(&values, bits);
            prop_assert_eq!(bytes.len(), packed_len(values.len(), bits));
            prop_assert_eq!(unpack(&bytes, values.len(), bits).unwrap(), values);
        }

        #[test]
        fn oversized_counts_are_refused(extra in 1usize..1000) {
            // One-bit values: a small message could otherwise ask for a huge
            // vector.
            let count = MAX_VALUES + extra;
            let bytes = vec![0u8; packed_len(count, 1)];
            prop_assert!(unpack(&bytes, count, 1).is_none());
            let fits = vec![0u8; packed_len(MAX_VALUES, 1)];
            prop_assert_eq!(unpack(&fits, MAX_VALUES, 1).map(|v| v.len()), Some(MAX_VALUES));
        }

        #[test]
        fn hostile_input_is_refused_not_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64), count in 0usize..100, bits in 0u32..70) {
            if let Some(v) = unpack(&bytes, count, bits) {
                prop_assert_eq!(v.len(), count);
            }
        }
    }
}
