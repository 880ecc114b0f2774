//! cargo-fuzz target for the GS1 parsers: arbitrary bytes through every entry point
//! (auto-detect, bracketed, element string, scan data, Digital Link). Besides "never
//! panics" it checks that whatever parses rebuilds: the element string re-parses to the
//! same HRI, and a generated Digital Link URI parses back to the same elements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linectl::gs1::{CANONICAL_DL_STEM, Gs1Code, Options, ScanData};

fuzz_target!(|data: &[u8]| {
    if let Ok(code) = Gs1Code::parse_bytes(data) {
        let es = code.element_string();
        let again = Gs1Code::parse_element_string(&es).expect("element string re-parses");
        assert_eq!(again.hri(), code.hri());
        if let Ok(uri) = code.digital_link(CANONICAL_DL_STEM) {
            let back = Gs1Code::parse_digital_link(&uri).expect("generated URI parses");
            let mut a: Vec<_> = back.elements().to_vec();
            let mut b: Vec<_> = code.elements().to_vec();
            a.sort_by(|x, y| x.ai.cmp(&y.ai));
            b.sort_by(|x, y| x.ai.cmp(&y.ai));
            b.dedup();
            assert_eq!(a, b, "{uri}");
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let lax = Options::syntax_only();
        let _ = ScanData::parse_with(s, &lax);
        let _ = Gs1Code::parse_bracketed_with(s, &lax);
        let _ = Gs1Code::parse_element_string_with(s, &lax);
        let _ = Gs1Code::parse_digital_link_with(s, &lax);
    }
});
