//! Shared fuzz driver: feed the input to a decoder in chunks (sizes taken from the
//! first byte), decode after each chunk, and check the buffer bound and progress.

use linectl_drivers::link::{Decoder, READ_CHUNK};

pub fn drive<D: Decoder>(mut d: D, limit: usize, data: &[u8], mut each: impl FnMut(D::Item)) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    for c in rest.chunks(chunk) {
        if d.feed(c).is_err() {
            assert!(d.pending() <= limit + READ_CHUNK);
            continue;
        }
        // Every decode call either consumes bytes or asks for more: bounded loop.
        for _ in 0..=c.len() + d.pending() {
            match d.decode() {
                Ok(Some(m)) => each(m),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        assert!(d.pending() <= limit + READ_CHUNK.max(64 * 1024));
    }
}
