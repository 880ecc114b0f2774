//! [`UnitSerial`]: a unit's serial number as published to observers, held inline (no
//! heap) up to the 20 characters of a GS1 AI 21 serial, so publishing each unit's
//! outcome copies its serial without allocating. Longer serials (not GS1) are kept on
//! the heap, never cut. It owns the representation only; serials themselves come from
//! the pool and are checked there.

use std::fmt;
use std::ops::Deref;

/// Bytes held inline: a GS1 AI 21 serial is at most 20 characters (CSET 82, ASCII).
const INLINE: usize = 20;

/// A unit's serial: a string, inline up to 20 bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UnitSerial(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// The first `len` bytes of `bytes` (the rest zero, so equal serials compare equal).
    Inline { len: u8, bytes: [u8; INLINE] },
    /// Longer than `INLINE` bytes.
    Heap(Box<str>),
}

impl UnitSerial {
    /// The serial as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Always whole UTF-8: copied from a `&str` in one piece.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(bytes.get(..usize::from(*len)).unwrap_or_default())
                    .unwrap_or_default()
            }
            Repr::Heap(s) => s,
        }
    }

    /// Whether the serial is held inline (no heap).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl From<&str> for UnitSerial {
    fn from(s: &str) -> Self {
        let mut bytes = [0u8; INLINE];
        match (bytes.get_mut(..s.len()), u8::try_from(s.len())) {
            (Some(head), Ok(len)) => {
                head.copy_from_slice(s.as_bytes());
                UnitSerial(Repr::Inline { len, bytes })
            }
            _ => UnitSerial(Repr::Heap(s.into())),
        }
    }
}

impl From<String> for UnitSerial {
    fn from(s: String) -> Self {
        if s.len() <= INLINE {
            UnitSerial::from(s.as_str())
        } else {
            UnitSerial(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl From<UnitSerial> for String {
    fn from(s: UnitSerial) -> Self {
        s.as_str().to_owned()
    }
}

impl Deref for UnitSerial {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for UnitSerial {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for UnitSerial {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for UnitSerial {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for UnitSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for UnitSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for UnitSerial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_serials_are_inline_and_read_back_whole() {
        for s in ["", "A", "12345678901234567890", "ÄÖ-ünïcode"] {
            let u = UnitSerial::from(s);
            assert!(u.is_inline(), "{s}");
            assert_eq!(u.as_str(), s);
            assert_eq!(UnitSerial::from(s.to_string()), u);
            assert_eq!(String::from(u), s);
        }
    }

    #[test]
    fn long_serials_are_kept_whole_on_the_heap() {
        let s = "123456789012345678901";
        let u = UnitSerial::from(s);
        assert!(!u.is_inline());
        assert_eq!(u, s);
        assert_eq!(UnitSerial::from(s.to_string()), u);
        assert_eq!(format!("{u}"), s);
        assert_eq!(format!("{u:?}"), format!("{s:?}"));
    }

    #[test]
    fn serializes_as_a_json_string() {
        let u = UnitSerial::from("SN\"1");
        assert_eq!(
            serde_json::to_string(&u).ok().as_deref(),
            Some(r#""SN\"1""#)
        );
    }
}
