//! The verifier end to end: real frames through the worker pool (with a virtual clock),
//! parsed by the GS1 engine and compared with what was printed; every reason code, and
//! the rule that nothing failing GS1 validation or differing from the print can pass.

mod vision_support;

use std::sync::Arc;
use std::time::Duration;

use linectl::clock::{Clock, VirtualClock};
use linectl::gs1::Gs1Code;
use linectl::vision::pool::{DecodePool, FrameOutcome, NoRead, PoolConfig};
use linectl::vision::verify::{RejectReason, Verdict, Verifier, VerifyConfig};
use linectl::vision::{DecodeConfig, Decoder, Grade, Read};
use vision_support::{load, manifest};

fn expected(bracketed: &str) -> Gs1Code {
    // the manifest holds zint's [AI] syntax; the engine parses (AI)
    Gs1Code::parse_bracketed(&bracketed.replace('[', "(").replace(']', ")")).unwrap()
}

fn read_of(file: &str) -> Read {
    Decoder::new(DecodeConfig::default())
        .decode(&load(file))
        .unwrap()
        .unwrap()
}

fn outcome(read: Read) -> FrameOutcome {
    FrameOutcome::Read {
        read,
        decode_time: Duration::ZERO,
    }
}

fn lenient() -> VerifyConfig {
    VerifyConfig {
        min_grade: Grade::F,
        batch_size: 1000,
    }
}

#[test]
fn pool_reads_then_verifier_passes_and_flags_duplicates() {
    let clock = Arc::new(VirtualClock::new(0));
    let pool = DecodePool::new(
        &PoolConfig {
            workers: 2,
            queue: 8,
            deadline_ms: 1_000,
            ..PoolConfig::default()
        },
        clock,
    );
    let mut verifier = Verifier::new(lenient());
    let entries: Vec<_> = manifest()
        .into_iter()
        .filter(|e| matches!(e.subset.as_str(), "clean" | "inverted" | "dmre"))
        .take(6)
        .collect();
    let pending: Vec<_> = entries.iter().map(|e| pool.submit(load(&e.file))).collect();
    let outcomes: Vec<_> = pending.into_iter().map(|p| p.wait()).collect();
    for (e, o) in entries.iter().zip(&outcomes) {
        let v = verifier.verify(&expected(&e.bracketed), o);
        match &v {
            Verdict::Pass(p) => {
                assert_eq!(p.code().hri(), e.hri);
                assert!(p.grade() >= Grade::F);
            }
            other => panic!("{}: {other:?}", e.file),
        }
        assert_eq!(v.code(), "pass");
    }
    assert_eq!(verifier.passed_count(), entries.len());
    // the same unit seen again in this batch is a duplicate
    let again = verifier.verify(&expected(&entries[0].bracketed), &outcomes[0]);
    assert!(
        matches!(again, Verdict::Reject(RejectReason::Duplicate { .. })),
        "{again:?}"
    );
    assert_eq!(again.code(), "duplicate");
    // a new batch forgets
    verifier.new_batch();
    assert_eq!(
        verifier
            .verify(&expected(&entries[0].bracketed), &outcomes[0])
            .code(),
        "pass"
    );
    pool.shutdown();
}

#[test]
fn wrong_code_names_the_ai() {
    let e = &manifest()[0];
    let read = read_of(&e.file);
    let printed = expected(&e.bracketed);
    // the printer printed the serial of another unit: same GTIN, other serial
    let other_serial: Vec<(String, String)> = printed
        .elements()
        .iter()
        .map(|el| {
            let v = if el.ai == "21" {
                format!("{}X", el.value)
            } else {
                el.value.clone()
            };
            (el.ai.clone(), v)
        })
        .collect();
    let other = Gs1Code::from_elements(other_serial).unwrap();
    let mut v = Verifier::new(lenient());
    match v.verify(&other, &outcome(read.clone())) {
        Verdict::Reject(RejectReason::WrongCode { ai, expected, read }) => {
            assert_eq!(ai, "21");
            assert!(expected.unwrap().ends_with('X'));
            assert!(read.is_some());
        }
        x => panic!("{x:?}"),
    }
    // an expected AI missing from the read
    let mut with_extra: Vec<(String, String)> = printed
        .elements()
        .iter()
        .map(|el| (el.ai.clone(), el.value.clone()))
        .collect();
    with_extra.push(("7003".into(), "2601011200".into()));
    let extra = Gs1Code::from_elements(with_extra).unwrap();
    match v.verify(&extra, &outcome(read)) {
        Verdict::Reject(RejectReason::WrongCode { ai, read: None, .. }) => assert_eq!(ai, "7003"),
        x => panic!("{x:?}"),
    }
}

#[test]
fn nothing_that_fails_gs1_validation_or_differs_can_pass() {
    let e = &manifest()[0];
    let good = read_of(&e.file);
    let printed = expected(&e.bracketed);
    let mut v = Verifier::new(lenient());
    let mut rejected = 0;
    // every single-character change of the content, and a few structural ones
    let chars: Vec<char> = good.content.chars().collect();
    let mut variants = Vec::new();
    for i in 0..chars.len() {
        for repl in ['0', '7', 'A', '\u{1d}'] {
            if chars[i] != repl {
                let mut c = chars.clone();
                c[i] = repl;
                variants.push(c.into_iter().collect::<String>());
            }
        }
        let mut c = chars.clone();
        c.remove(i);
        variants.push(c.into_iter().collect());
    }
    variants.push(format!("{}\u{1d}", good.content));
    variants.push(String::new());
    for content in variants {
        if content == good.content {
            continue;
        }
        let mut r = good.clone();
        r.content = content.clone();
        let verdict = v.verify(&printed, &outcome(r));
        assert!(!matches!(verdict, Verdict::Pass(_)), "passed {content:?}");
        if let Verdict::Reject(reason) = &verdict {
            assert!(
                matches!(reason.code(), "bad-syntax" | "wrong-code"),
                "{content:?}: {reason:?}"
            );
        }
        rejected += 1;
    }
    assert!(rejected > 50);
    // a non-GS1 DataMatrix (no leading FNC1) with the right characters is bad-syntax
    let mut plain = good.clone();
    plain.symbology = "]d1".into();
    assert_eq!(v.verify(&printed, &outcome(plain)).code(), "bad-syntax");
    // and the real read still passes
    assert_eq!(v.verify(&printed, &outcome(good)).code(), "pass");
}

#[test]
fn low_grade_late_missing_and_no_read() {
    let e = &manifest()[0];
    let read = read_of(&e.file);
    let printed = expected(&e.bracketed);
    let mut strict = Verifier::new(VerifyConfig {
        min_grade: Grade::A,
        batch_size: 10,
    });
    if read.grade.overall < Grade::A {
        match strict.verify(&printed, &outcome(read.clone())) {
            Verdict::Reject(RejectReason::LowGrade { grade, min }) => {
                assert_eq!(grade, read.grade.overall);
                assert_eq!(min, Grade::A);
            }
            x => panic!("{x:?}"),
        }
    }
    // a read that graded F is rejected at the default minimum (C)
    let mut f = read.clone();
    f.grade.overall = Grade::F;
    let mut v = Verifier::new(VerifyConfig::default());
    assert_eq!(v.verify(&printed, &outcome(f)).code(), "low-grade");
    assert_eq!(v.verify(&printed, &FrameOutcome::Late).code(), "late");
    assert_eq!(
        v.verify(&printed, &FrameOutcome::Missing).code(),
        "missing-frame"
    );
    assert_eq!(
        v.verify(&printed, &FrameOutcome::NoRead(NoRead::NotFound))
            .code(),
        "no-read"
    );
    assert_eq!(
        v.verify(
            &printed,
            &FrameOutcome::NoRead(NoRead::Panicked("x".into()))
        )
        .code(),
        "no-read"
    );
    // a rejected unit did not enter the seen-set
    assert_eq!(v.passed_count(), 0);
}

#[test]
fn deadline_on_the_virtual_clock_makes_a_real_decode_late() {
    // A deadline already at "now" on a clock that does not move: the frame is late
    // (or skipped in the queue), and the pool still answers the next frame.
    let clock = Arc::new(VirtualClock::new(0));
    let pool = DecodePool::new(
        &PoolConfig {
            workers: 1,
            queue: 2,
            deadline_ms: 0,
            ..PoolConfig::default()
        },
        Arc::clone(&clock) as Arc<dyn Clock>,
    );
    let e = &manifest()[0];
    assert_eq!(pool.submit(load(&e.file)).wait(), FrameOutcome::Late);
    let deadline = clock.now().plus(Duration::from_secs(3600));
    match pool.submit_until(load(&e.file), deadline).wait() {
        FrameOutcome::Read { read, .. } => assert_eq!(read.content, e.content),
        x => panic!("{x:?}"),
    }
    pool.shutdown();
}
