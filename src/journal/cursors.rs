//! Persisted consumer cursors: one small file `cursors` in the journal directory holding,
//! per consumer name, the first seq that consumer has not yet confirmed. It is replaced
//! atomically (write `cursors.tmp`, fdatasync, rename, fsync the directory), so it is
//! either the old or the new version, never torn; a checksum mismatch is therefore fatal.
//! Cursor rules (forward only, not past the end) live in `mod.rs`.
//!
//! ```text
//! magic "LCTLCURS" | version u32 | count u32 | count × (name len u16 | name | next seq u64)
//! | crc32c(everything before) u32
//! ```

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::format::crc32c;
use super::storage::Storage;
use super::{JournalError, Seq};

const MAGIC: [u8; 8] = *b"LCTLCURS";
const VERSION: u32 = 1;
pub(super) const FILE: &str = "cursors";
const TMP: &str = "cursors.tmp";

/// Encode the cursor map.
pub(super) fn encode(cursors: &BTreeMap<String, Seq>) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + cursors.len() * 32);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(cursors.len() as u32).to_le_bytes());
    for (name, seq) in cursors {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&seq.0.to_le_bytes());
    }
    let crc = crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decode the cursor map; `Err(reason)` on any damage.
pub(super) fn decode(bytes: &[u8]) -> Result<BTreeMap<String, Seq>, String> {
    let body_len = bytes
        .len()
        .checked_sub(4)
        .ok_or_else(|| "file shorter than a checksum".to_string())?;
    let (body, crc) = bytes.split_at(body_len);
    let mut crc_b = [0u8; 4];
    crc_b.copy_from_slice(crc);
    if u32::from_le_bytes(crc_b) != crc32c(body) {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader { b: body, pos: 0 };
    if r.take(8)? != MAGIC {
        return Err("bad magic".into());
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let count = r.u32()?;
    let mut map = BTreeMap::new();
    for _ in 0..count {
        let len = r.u16()? as usize;
        let name = std::str::from_utf8(r.take(len)?)
            .map_err(|_| "consumer name is not UTF-8".to_string())?
            .to_string();
        let seq = Seq(r.u64()?);
        map.insert(name, seq);
    }
    if r.pos != body.len() {
        return Err("trailing bytes".into());
    }
    Ok(map)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        self.pos += n;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let mut a = [0u8; 2];
        a.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(a))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

/// Load the persisted cursors (empty if the journal never had any). Removes a leftover
/// temporary file from an interrupted save.
pub(super) fn load(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<BTreeMap<String, Seq>, JournalError> {
    let tmp = dir.join(TMP);
    match storage.remove(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(JournalError::io("remove", tmp, e)),
    }
    let path = dir.join(FILE);
    let bytes = match super::recovery::read_file(storage, &path) {
        Ok(b) => b,
        Err(JournalError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(BTreeMap::new());
        }
        Err(e) => return Err(e),
    };
    decode(&bytes).map_err(|reason| JournalError::Corrupt {
        segment: path,
        offset: 0,
        reason: format!("cursor file: {reason}"),
    })
}

/// Durably replace the cursor file.
pub(super) fn store(
    storage: &dyn Storage,
    dir: &Path,
    cursors: &BTreeMap<String, Seq>,
) -> Result<(), JournalError> {
    let tmp = dir.join(TMP);
    let path = dir.join(FILE);
    let mut f = storage
        .create_truncate(&tmp)
        .map_err(|e| JournalError::io("create", &tmp, e))?;
    f.append(&encode(cursors))
        .map_err(|e| JournalError::io("write", &tmp, e))?;
    f.sync_data()
        .map_err(|e| JournalError::io("fdatasync", &tmp, e))?;
    drop(f);
    storage
        .rename(&tmp, &path)
        .map_err(|e| JournalError::io("rename", &path, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| JournalError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_file_round_trips_and_detects_damage() {
        let mut m = BTreeMap::new();
        m.insert("uplink".to_string(), Seq(10));
        m.insert("site-pull".to_string(), Seq(3));
        let bytes = encode(&m);
        assert_eq!(decode(&bytes), Ok(m));
        for i in 0..bytes.len() {
            let mut d = bytes.clone();
            d[i] ^= 0x01;
            assert!(decode(&d).is_err(), "flip at {i} undetected");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&[]).is_err());
    }
}
