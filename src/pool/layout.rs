//! The on-disk layout of the serial payloads and of the duplicate index (store format
//! version 2): serials are stored in bundles of [`BUNDLE`] consecutive seqs under one
//! key, the duplicate index in hash buckets holding a sorted list of `(serial, seq)`.
//! This module owns the keys, the byte encodings and the bucket hash, and nothing else:
//! it does not read or write the store (the pool does) and knows no states.
//!
//! ```text
//! Serials space (sled tree `bundles`):
//!   GTIN(14 ASCII digits) ++ (seq / 256)(u64 BE) -> bundle
//!   bundle = entry*, the payloads of seqs (seq/256)*256 .. in order, at most 256;
//!   entry  = len(u8) payload(len bytes)
//! Index space (sled tree `buckets`):
//!   GTIN ++ bucket(u16 BE) -> entry*, sorted by serial bytes, no serial twice
//!   entry  = len(u8) serial(len bytes) seq(u64 BE)
//!   bucket = the top 16 bits of hash64(serial)
//! ```
//!
//! `hash64` is FNV-1a 64 followed by the splitmix64 finaliser; it is part of the format
//! and must never change without a new format version.

use super::PoolError;

/// The store format this build reads and writes (ctl key `m/format`, u64 BE). Format 1
/// (one key per serial in trees `serials` and `index`) had no version key.
pub const FORMAT_VERSION: u64 = 2;

/// log2 of the serials per bundle.
pub const BUNDLE_BITS: u32 = 8;
/// Serials per bundle.
pub const BUNDLE: u64 = 1 << BUNDLE_BITS;

/// The bundle number holding `seq`.
pub fn bundle_of(seq: u64) -> u64 {
    seq >> BUNDLE_BITS
}

/// The first seq of bundle `n`.
pub fn bundle_start(n: u64) -> u64 {
    n << BUNDLE_BITS
}

/// Bytes a [`Key`] holds without allocating: every key of a GTIN-14 fits.
const KEY_INLINE: usize = 40;

/// A store key built without allocating (on the stack; a longer key than any GTIN-14
/// key, which only an odd argument can make, goes to the heap). Derefs to its bytes.
#[derive(Clone)]
pub struct Key(KeyBytes);

#[derive(Clone)]
enum KeyBytes {
    Inline(u8, [u8; KEY_INLINE]),
    Heap(Vec<u8>),
}

impl Key {
    /// The concatenation of `parts`.
    pub fn of(parts: &[&[u8]]) -> Key {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        match u8::try_from(len) {
            Ok(n) if len <= KEY_INLINE => {
                let mut buf = [0u8; KEY_INLINE];
                let mut at = 0;
                for p in parts {
                    if let Some(dst) = buf.get_mut(at..at + p.len()) {
                        dst.copy_from_slice(p);
                    }
                    at += p.len();
                }
                Key(KeyBytes::Inline(n, buf))
            }
            _ => Key(KeyBytes::Heap(parts.concat())),
        }
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            KeyBytes::Inline(n, buf) => buf.get(..usize::from(*n)).unwrap_or_default(),
            KeyBytes::Heap(v) => v,
        }
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", String::from_utf8_lossy(self).escape_debug())
    }
}

/// The Serials-space key of bundle `n` of `gtin`.
pub fn bundle_key(gtin: &str, n: u64) -> Key {
    Key::of(&[gtin.as_bytes(), &n.to_be_bytes()])
}

/// The Index-space key of `bucket` of `gtin`.
pub fn bucket_key(gtin: &str, bucket: u16) -> Key {
    Key::of(&[gtin.as_bytes(), &bucket.to_be_bytes()])
}

/// The stable 64-bit hash of a serial (FNV-1a 64, then the splitmix64 finaliser).
pub fn hash64(serial: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in serial {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The index bucket of a serial with hash `h`.
pub fn bucket_of_hash(h: u64) -> u16 {
    (h >> 48) as u16
}

/// The index bucket of `serial`.
pub fn bucket_of(serial: &[u8]) -> u16 {
    bucket_of_hash(hash64(serial))
}

fn corrupt(key: &[u8], reason: String) -> PoolError {
    PoolError::Corrupt {
        key: super::printable(key),
        reason,
    }
}

fn len_u8(what: &str, v: &[u8]) -> Result<u8, PoolError> {
    u8::try_from(v.len()).map_err(|_| {
        PoolError::Usage(format!(
            "{what} `{}` is {} bytes long; the store holds at most 255",
            String::from_utf8_lossy(v),
            v.len()
        ))
    })
}

/// Append one payload to a bundle value.
pub fn push_payload(bundle: &mut Vec<u8>, payload: &[u8]) -> Result<(), PoolError> {
    bundle.push(len_u8("payload", payload)?);
    bundle.extend_from_slice(payload);
    Ok(())
}

/// The payloads of a bundle value, in seq order. `key` names the record in errors.
pub fn bundle_payloads<'v>(key: &[u8], value: &'v [u8]) -> Result<Vec<&'v [u8]>, PoolError> {
    bundle_iter(key, value).collect()
}

/// The payloads of a bundle value, in seq order, one by one (nothing allocated); a
/// malformed record ends with an `Err`. `key` names the record in errors.
pub fn bundle_iter<'k, 'v>(
    key: &'k [u8],
    value: &'v [u8],
) -> impl Iterator<Item = Result<&'v [u8], PoolError>> + use<'k, 'v> {
    let mut rest = value;
    let mut n = 0u64;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let (&len, tail) = rest.split_first()?;
        let len = usize::from(len);
        let out = match tail.get(..len) {
            None => Err(corrupt(
                key,
                format!("bundle entry {n} runs past the end of the record"),
            )),
            Some(_) if n >= BUNDLE => Err(corrupt(
                key,
                format!("bundle holds more than {BUNDLE} serials"),
            )),
            Some(p) => Ok(p),
        };
        failed = out.is_err();
        rest = tail.get(len..).unwrap_or_default();
        n += 1;
        Some(out)
    })
}

/// The byte length of the first `n` entries of a bundle value.
pub fn bundle_prefix_len(key: &[u8], value: &[u8], n: usize) -> Result<usize, PoolError> {
    let mut at = 0usize;
    for i in 0..n {
        let len = *value
            .get(at)
            .ok_or_else(|| corrupt(key, format!("bundle has {i} entries, expected {n}")))?;
        at += 1 + usize::from(len);
        if at > value.len() {
            return Err(corrupt(
                key,
                format!("bundle entry {i} runs past the end of the record"),
            ));
        }
    }
    Ok(at)
}

/// One entry of an index bucket.
pub type BucketEntry<'v> = (&'v [u8], u64);

/// Decode a bucket value (entries sorted by serial, as stored). `key` names the record.
pub fn bucket_entries<'v>(key: &[u8], value: &'v [u8]) -> Result<Vec<BucketEntry<'v>>, PoolError> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        let (serial, seq) = tail.get(..len).zip(tail.get(len..len + 8)).ok_or_else(|| {
            corrupt(
                key,
                format!("index entry {} runs past the end of the record", out.len()),
            )
        })?;
        let seq: [u8; 8] = seq
            .try_into()
            .map_err(|_| corrupt(key, "index entry seq is not 8 bytes".into()))?;
        out.push((serial, u64::from_be_bytes(seq)));
        rest = tail.get(len + 8..).unwrap_or_default();
    }
    Ok(out)
}

/// Encode bucket entries (must be sorted by serial).
pub fn encode_bucket<'a>(
    entries: impl IntoIterator<Item = BucketEntry<'a>>,
) -> Result<Vec<u8>, PoolError> {
    let mut v = Vec::new();
    for (serial, seq) in entries {
        v.push(len_u8("serial", serial)?);
        v.extend_from_slice(serial);
        v.extend_from_slice(&seq.to_be_bytes());
    }
    Ok(v)
}

/// Find `serial` in decoded bucket entries: its seq.
pub fn bucket_find(entries: &[BucketEntry<'_>], serial: &[u8]) -> Option<u64> {
    entries
        .binary_search_by(|(s, _)| (*s).cmp(serial))
        .ok()
        .and_then(|i| entries.get(i))
        .map(|e| e.1)
}

/// Look `serial` up in a bucket value without decoding it into a list (every entry is
/// still checked for its form): its seq. `key` names the record in errors.
pub fn bucket_lookup(key: &[u8], value: &[u8], serial: &[u8]) -> Result<Option<u64>, PoolError> {
    let mut found = None;
    let mut rest = value;
    let mut i = 0usize;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        let (s, seq) = tail.get(..len).zip(tail.get(len..len + 8)).ok_or_else(|| {
            corrupt(
                key,
                format!("index entry {i} runs past the end of the record"),
            )
        })?;
        let seq: [u8; 8] = seq
            .try_into()
            .map_err(|_| corrupt(key, "index entry seq is not 8 bytes".into()))?;
        if s == serial {
            found = Some(u64::from_be_bytes(seq));
        }
        rest = tail.get(len + 8..).unwrap_or_default();
        i += 1;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_and_buckets_round_trip() {
        let mut b = Vec::new();
        for p in [&b"A1"[..], b"", b"XYZ\x1d91EE07"] {
            push_payload(&mut b, p).unwrap();
        }
        let got = bundle_payloads(b"k", &b).unwrap();
        assert_eq!(got, [&b"A1"[..], b"", b"XYZ\x1d91EE07"]);
        assert_eq!(bundle_prefix_len(b"k", &b, 2).unwrap(), 4);
        assert!(bundle_prefix_len(b"k", &b, 4).is_err());
        // A cut record is corrupt, not a shorter bundle.
        assert!(bundle_payloads(b"k", b.get(..b.len() - 1).unwrap()).is_err());

        let v = encode_bucket([(&b"A1"[..], 7u64), (b"B2", 1 << 40)]).unwrap();
        let e = bucket_entries(b"k", &v).unwrap();
        assert_eq!(e, [(&b"A1"[..], 7), (&b"B2"[..], 1 << 40)]);
        assert_eq!(bucket_find(&e, b"B2"), Some(1 << 40));
        assert_eq!(bucket_find(&e, b"B3"), None);
        assert_eq!(bucket_lookup(b"k", &v, b"B2").unwrap(), Some(1 << 40));
        assert_eq!(bucket_lookup(b"k", &v, b"A1").unwrap(), Some(7));
        assert_eq!(bucket_lookup(b"k", &v, b"B3").unwrap(), None);
        assert!(bucket_lookup(b"k", v.get(..v.len() - 3).unwrap(), b"A1").is_err());
        assert_eq!(
            &*bucket_key("09506000134352", 0x0102),
            b"09506000134352\x01\x02"
        );
        let long = "9".repeat(60);
        assert_eq!(bucket_key(&long, 1).len(), 62);
        assert!(bucket_entries(b"k", v.get(..v.len() - 3).unwrap()).is_err());
        assert!(push_payload(&mut b, &[b'x'; 256]).is_err());
    }

    #[test]
    fn the_hash_is_stable_and_spreads() {
        // Part of the format: these values must never change.
        assert_eq!(hash64(b"0123456789AB"), 0xb127_795a_5f1b_8daa);
        assert_eq!(hash64(b""), 0xf52a_15e9_a9b5_e89b);
        let mut seen = std::collections::HashSet::new();
        for i in 0..4096u32 {
            seen.insert(bucket_of(format!("{i:06}").as_bytes()));
        }
        // Sequential serials spread over many buckets.
        assert!(seen.len() > 3500, "{}", seen.len());
    }
}
