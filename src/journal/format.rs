//! On-disk format of the journal: the segment header, the record frame and the CRC32C
//! that guards both. Pure byte encoding and decoding, no I/O: reading files, deciding
//! what a damaged tail means and writing batches belong to `recovery` and `mod.rs`.
//!
//! Segment file `seg-<first seq, 20 digits>.jlog`:
//! ```text
//! header (32 bytes): magic "LCTLJRNL" | version u32 | header len u32 | first seq u64
//!                    | reserved u32 | crc32c(previous 28 bytes) u32
//! record (20 + n):   payload len n u32 | crc32c(len, seq, type, flags, payload) u32
//!                    | seq u64 | record type u16 | flags u16 | payload n bytes
//! ```
//! All integers little endian. Flag bit 0 ([`FLAG_WRITE_START`]) marks the first record
//! of each write the committer makes durable with one `fdatasync`: recovery uses it to
//! tell a torn final write (cut) from damage followed by a later write (fatal).

use super::{RecordType, Seq};

/// Magic bytes that open every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"LCTLJRNL";
/// Format version written into every segment header.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header in bytes.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Size of a record frame header (before the payload).
pub const RECORD_HEADER_LEN: usize = 20;
/// Record flag: first record of a write that is made durable with one `fdatasync`.
pub const FLAG_WRITE_START: u16 = 1;

const CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// CRC32C (Castagnoli) of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    CRC32C.checksum(bytes)
}

/// Encode a segment header for a segment whose first record has `first_seq`.
pub fn encode_segment_header(first_seq: Seq) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.0.to_le_bytes());
    // 24..28 reserved, zero.
    let crc = crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a segment header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Fewer bytes than a header.
    Short(usize),
    /// All bytes zero (a file created but never written, as after a power cut).
    Zeroed,
    /// Wrong magic: not a journal segment.
    BadMagic,
    /// A format version this build cannot read.
    UnsupportedVersion(u32),
    /// Header checksum mismatch.
    BadChecksum,
}

impl std::fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderProblem::Short(n) => write!(
                f,
                "segment header truncated ({n} of {SEGMENT_HEADER_LEN} bytes)"
            ),
            HeaderProblem::Zeroed => write!(f, "segment header is all zero bytes"),
            HeaderProblem::BadMagic => write!(f, "bad magic, not a linectl journal segment"),
            HeaderProblem::UnsupportedVersion(v) => {
                write!(
                    f,
                    "unsupported format version {v} (this build reads {FORMAT_VERSION})"
                )
            }
            HeaderProblem::BadChecksum => write!(f, "segment header checksum mismatch"),
        }
    }
}

/// Decode a segment header, returning the first seq it declares.
pub fn decode_segment_header(bytes: &[u8]) -> Result<Seq, HeaderProblem> {
    let h = bytes
        .get(..SEGMENT_HEADER_LEN)
        .ok_or(HeaderProblem::Short(bytes.len()))?;
    if h.iter().all(|b| *b == 0) {
        return Err(HeaderProblem::Zeroed);
    }
    if h[0..8] != SEGMENT_MAGIC {
        return Err(HeaderProblem::BadMagic);
    }
    // The checksum comes first: a torn header with an intact magic is not a new version.
    if le_u32(&h[28..32]) != crc32c(&h[0..28]) {
        return Err(HeaderProblem::BadChecksum);
    }
    let version = le_u32(&h[8..12]);
    if version != FORMAT_VERSION {
        return Err(HeaderProblem::UnsupportedVersion(version));
    }
    if le_u32(&h[12..16]) as usize != SEGMENT_HEADER_LEN {
        return Err(HeaderProblem::BadChecksum);
    }
    Ok(Seq(le_u64(&h[16..24])))
}

/// Bytes a record with a payload of `payload_len` bytes takes on disk.
pub const fn record_len(payload_len: usize) -> usize {
    RECORD_HEADER_LEN + payload_len
}

/// Checksum of a whole frame: every byte except the checksum field itself.
fn frame_crc(frame: &[u8]) -> u32 {
    let mut d = CRC32C.digest();
    d.update(frame.get(0..4).unwrap_or(&[]));
    d.update(frame.get(8..).unwrap_or(&[]));
    d.finalize()
}

/// Append the encoded record to `out`. The caller has checked the payload size against
/// the configured maximum (which is far below `u32::MAX`).
pub fn encode_record(out: &mut Vec<u8>, seq: Seq, kind: RecordType, flags: u16, payload: &[u8]) {
    let start = out.len();
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.0.to_le_bytes());
    out.extend_from_slice(&kind.0.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = frame_crc(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A record frame header as read from disk, not yet checked against its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length in bytes.
    pub len: u32,
    /// Stored checksum.
    pub crc: u32,
    /// Sequence number.
    pub seq: Seq,
    /// Record type tag.
    pub kind: RecordType,
    /// Flags ([`FLAG_WRITE_START`]; other bits must be zero in version 1).
    pub flags: u16,
}

/// Parse a frame header from at least [`RECORD_HEADER_LEN`] bytes.
pub fn decode_frame_header(bytes: &[u8]) -> Option<FrameHeader> {
    let h = bytes.get(..RECORD_HEADER_LEN)?;
    Some(FrameHeader {
        len: le_u32(&h[0..4]),
        crc: le_u32(&h[4..8]),
        seq: Seq(le_u64(&h[8..16])),
        kind: RecordType(le_u16(&h[16..18])),
        flags: le_u16(&h[18..20]),
    })
}

/// Does the complete frame (header + payload, as `header` was decoded from) check out?
pub fn frame_ok(header: &FrameHeader, frame: &[u8]) -> bool {
    header.flags & !FLAG_WRITE_START == 0 && frame_crc(frame) == header.crc
}

fn le_u16(b: &[u8]) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[..2]);
    u16::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// File name of the segment whose first record has `first_seq`.
pub fn segment_file_name(first_seq: Seq) -> String {
    format!("seg-{:020}.jlog", first_seq.0)
}

/// Parse a segment file name back into its first seq; `None` for other files.
pub fn parse_segment_file_name(name: &str) -> Option<Seq> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".jlog")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_value() {
        // CRC-32C check value for "123456789" (RFC 3720 / catalogue).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn segment_header_round_trips_and_rejects_damage() {
        let h = encode_segment_header(Seq(42));
        assert_eq!(decode_segment_header(&h), Ok(Seq(42)));
        assert_eq!(
            decode_segment_header(&h[..10]),
            Err(HeaderProblem::Short(10))
        );
        assert_eq!(
            decode_segment_header(&[0u8; 32]),
            Err(HeaderProblem::Zeroed)
        );
        let mut bad = h;
        bad[0] = b'X';
        assert_eq!(decode_segment_header(&bad), Err(HeaderProblem::BadMagic));
        let mut bad = h;
        bad[17] ^= 1;
        assert_eq!(decode_segment_header(&bad), Err(HeaderProblem::BadChecksum));
        let mut bad = h;
        bad[8] = 9;
        assert_eq!(decode_segment_header(&bad), Err(HeaderProblem::BadChecksum));
        let crc = crc32c(&bad[0..28]);
        bad[28..32].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_segment_header(&bad),
            Err(HeaderProblem::UnsupportedVersion(9))
        );
    }

    #[test]
    fn record_round_trips_and_any_flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode_record(
            &mut buf,
            Seq(7),
            RecordType(3),
            FLAG_WRITE_START,
            b"hello journal",
        );
        assert_eq!(buf.len(), record_len(13));
        let h = decode_frame_header(&buf).expect("header");
        assert_eq!(
            (h.len, h.seq, h.kind, h.flags),
            (13, Seq(7), RecordType(3), FLAG_WRITE_START)
        );
        assert!(frame_ok(&h, &buf));
        for byte in 0..buf.len() {
            if (0..4).contains(&byte) {
                continue; // the length decides which bytes are read; covered by recovery tests
            }
            let mut damaged = buf.clone();
            damaged[byte] ^= 0x10;
            let h = decode_frame_header(&damaged).expect("header");
            assert!(!frame_ok(&h, &damaged), "flip at {byte} undetected");
        }
    }

    #[test]
    fn segment_names_round_trip() {
        let name = segment_file_name(Seq(123));
        assert_eq!(name, "seg-00000000000000000123.jlog");
        assert_eq!(parse_segment_file_name(&name), Some(Seq(123)));
        assert_eq!(parse_segment_file_name("seg-12.jlog"), None);
        assert_eq!(parse_segment_file_name("cursors"), None);
    }
}
