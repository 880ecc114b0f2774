//! Unit tests of the pool on a real sled store in a temporary directory.

use super::alloc::AllocatorConfig;
use super::*;

const G: &str = "09506000134352";

fn list(items: &[&str]) -> Source {
    let v: Vec<Result<SerialRecord, SourceError>> = items
        .iter()
        .zip(1u64..)
        .map(|(s, at)| {
            Ok(SerialRecord {
                at,
                serial: s.to_string(),
                ai91: None,
                ai92: None,
            })
        })
        .collect();
    Source {
        header: None,
        records: Box::new(v.into_iter()),
    }
}

fn new_pool(dir: &Path) -> Pool {
    Pool::open(dir, OpenMode::CreateIfMissing).unwrap()
}

fn count(p: &Pool, st: SerialState) -> u64 {
    p.status().unwrap()[0].states[st.name()]
}

#[test]
fn reserve_hand_out_encode_and_recover_after_a_crash() {
    let d = tempfile::tempdir().unwrap();
    let mut p = new_pool(d.path());
    p.import(
        G,
        Some(Market::UsDscsa),
        list(&["A1", "A2", "A3", "A4", "A5", "A6"]),
        "t",
    )
    .unwrap();
    let mut a = p
        .allocator(
            G,
            "L1",
            "B1",
            AllocatorConfig {
                block_size: 4,
                quantity: None,
            },
        )
        .unwrap();
    let h1 = a.next_serial().unwrap();
    let h2 = a.next_serial().unwrap();
    assert_eq!((h1.serial(), h2.serial()), ("A1", "A2"));
    a.mark_encoded(&h1).unwrap();
    // Marking a serial not yet handed out is refused.
    let fake = Handed {
        block: h2.block,
        seq: h2.seq + 1,
        payload: super::alloc::Payload::new("A3").unwrap(),
    };
    assert!(a.mark_encoded(&fake).is_err());
    // Crash: the allocator vanishes without closing its block.
    std::mem::forget(a);
    drop(p);
    let p = new_pool(d.path());
    assert_eq!(p.recovery().blocks_closed, 1);
    assert_eq!(p.recovery().serials_invalidated, 3);
    assert_eq!(p.state_of(G, "A1").unwrap(), Some(SerialState::Encoded));
    assert_eq!(p.state_of(G, "A2").unwrap(), Some(SerialState::SnInvalid));
    assert_eq!(p.state_of(G, "A5").unwrap(), Some(SerialState::Unallocated));
    let reports = p.invalid_reports().unwrap();
    assert_eq!(reports[0].serials, ["A2", "A3", "A4"]);
    assert!(p.verify().unwrap().ok());
    // Never handed out again.
    let mut p = p;
    let mut a = p
        .allocator(G, "L1", "B1", AllocatorConfig::default())
        .unwrap();
    assert_eq!(a.next_serial().unwrap().serial(), "A5");
}

#[test]
fn a_batch_the_pool_cannot_cover_is_refused_with_the_shortfall() {
    let d = tempfile::tempdir().unwrap();
    let mut p = new_pool(d.path());
    p.import(G, Some(Market::UsDscsa), list(&["A1", "A2", "A3"]), "t")
        .unwrap();
    let cfg = AllocatorConfig {
        block_size: 10,
        quantity: Some(5),
    };
    match p.allocator(G, "L1", "B1", cfg).err().unwrap() {
        PoolError::InsufficientSerialNumbers {
            requested: 5,
            available: 3,
            shortfall: 2,
            ..
        } => {}
        e => panic!("{e}"),
    }
    // Open-ended allocation runs dry with the same error.
    let mut a = p
        .allocator(
            G,
            "L1",
            "B1",
            AllocatorConfig {
                block_size: 2,
                quantity: None,
            },
        )
        .unwrap();
    for _ in 0..3 {
        let h = a.next_serial().unwrap();
        a.mark_encoded(&h).unwrap();
    }
    assert!(matches!(
        a.next_serial(),
        Err(PoolError::InsufficientSerialNumbers { .. })
    ));
}

#[test]
fn states_move_forward_only_and_returns_are_recorded() {
    let d = tempfile::tempdir().unwrap();
    let mut p = new_pool(d.path());
    p.import(
        G,
        Some(Market::UsDscsa),
        list(&["A1", "A2", "A3", "A4"]),
        "t",
    )
    .unwrap();
    p.return_unallocated(G, &["A2"], "site server asked")
        .unwrap();
    {
        let mut a = p
            .allocator(
                G,
                "L",
                "B",
                AllocatorConfig {
                    block_size: 10,
                    quantity: Some(2),
                },
            )
            .unwrap();
        for _ in 0..2 {
            let h = a.next_serial().unwrap();
            assert_ne!(h.serial(), "A2", "a returned serial was handed out");
            a.mark_encoded(&h).unwrap();
        }
        a.close().unwrap();
    }
    assert_eq!(p.state_of(G, "A3").unwrap(), Some(SerialState::Encoded));
    p.set_state(G, &["A1"], SerialState::Commissioned).unwrap();
    p.set_state(G, &["A1"], SerialState::Sampled).unwrap();
    assert!(matches!(
        p.set_state(G, &["A1"], SerialState::Commissioned),
        Err(PoolError::Transition { .. })
    ));
    assert!(p.set_state(G, &["A4"], SerialState::Commissioned).is_err());
    assert!(p.set_state(G, &["A3"], SerialState::SnInvalid).is_err());
    assert!(p.return_unallocated(G, &["A3"], "x").is_err());
    assert!(matches!(
        p.set_state(G, &["ZZ"], SerialState::Destroyed),
        Err(PoolError::UnknownSerial { .. })
    ));
    assert_eq!(count(&p, SerialState::Sampled), 1);
    assert_eq!(count(&p, SerialState::Returned), 1);
    assert_eq!(count(&p, SerialState::Encoded), 1);
    assert_eq!(count(&p, SerialState::Unallocated), 1);
    let v = p.verify().unwrap();
    assert!(v.ok(), "{:?}", v.problems);
}

#[test]
fn an_import_that_dies_half_way_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut p = new_pool(d.path());
    p.import(G, Some(Market::UsDscsa), list(&["A1"]), "t")
        .unwrap();
    // Stage serials as an import would, then "crash" before the commit.
    {
        let mut st = stage::Stager::new(&p.store, G, 1).unwrap();
        let mut c = stage::Chunk::default();
        for s in ["B1", "B2", "A1"] {
            c.push(s.as_bytes(), 1).unwrap();
        }
        st.stage(&mut c, "x").unwrap();
        assert_eq!((st.cur, st.dup_pool), (3, 1));
    }
    drop(p);
    let mut p = new_pool(d.path());
    assert_eq!(p.recovery().staged_removed, 2);
    assert_eq!(p.status().unwrap()[0].total, 1);
    assert!(p.verify().unwrap().ok());
    // The staged serials are importable afterwards (their stale index entries are gone).
    let r = p.import(G, None, list(&["B1", "B2", "B1"]), "t").unwrap();
    assert_eq!(
        (r.imported, r.duplicates_in_file, r.duplicates_in_pool),
        (2, 1, 0)
    );
    // One bad serial: nothing imported.
    let e = p
        .import(G, None, list(&["C1", "C 2", "C3"]), "f.csv")
        .unwrap_err();
    assert!(e.to_string().contains("f.csv: 2"), "{e}");
    assert_eq!(p.status().unwrap()[0].total, 3);
    assert_eq!(p.state_of(G, "C1").unwrap(), None);
    assert!(p.verify().unwrap().ok());
}

#[test]
fn a_store_behind_its_high_water_mark_is_refused() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut p = new_pool(d.path());
        p.import(G, Some(Market::UsDscsa), list(&["A1", "A2"]), "t")
            .unwrap();
    }
    // Keep a copy of the store, advance the pool, put the old store back.
    let old = tempfile::tempdir().unwrap();
    copy_dir(&d.path().join("store"), old.path());
    {
        let mut p = new_pool(d.path());
        let mut a = p
            .allocator(G, "L", "B", AllocatorConfig::default())
            .unwrap();
        let h = a.next_serial().unwrap();
        a.mark_encoded(&h).unwrap();
    }
    std::fs::remove_dir_all(d.path().join("store")).unwrap();
    copy_dir(old.path(), &d.path().join("store"));
    let e = Pool::open(d.path(), OpenMode::MustExist)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("behind its high-water mark"), "{e}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_second_open_of_the_same_dir_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let _p = new_pool(d.path());
    assert!(matches!(
        Pool::open(d.path(), OpenMode::MustExist),
        Err(PoolError::InUse(_))
    ));
    let e = tempfile::tempdir().unwrap();
    assert!(matches!(
        Pool::open(e.path(), OpenMode::MustExist),
        Err(PoolError::NoPool(_))
    ));
}

#[test]
fn request_tokens_make_retries_idempotent() {
    let d = tempfile::tempdir().unwrap();
    let mut p = new_pool(d.path());
    p.import(G, Some(Market::EuFmd), list(&["SEED1"]), "t")
        .unwrap();
    let t1 = p.begin_request(G, 3).unwrap();
    // A retry (here: after a restart) gets the same token.
    drop(p);
    let mut p = new_pool(d.path());
    let t2 = p.begin_request(G, 3).unwrap();
    assert_eq!(t1.token, t2.token);
    assert_eq!(p.pending_requests().unwrap().len(), 1);
    let doc = |id: &str, serials: &[&str]| {
        let v = serde_json::json!({"type": "SNCollection", "version": 1, "snCollectionId": id,
            "requestToken": t1.token, "gtin": G, "serialNumbers": serials});
        let path = d.path().join(format!("{id}.json"));
        std::fs::write(&path, v.to_string()).unwrap();
        path
    };
    let c1 = doc("c1", &["X1", "X2", "X3"]);
    let open1 = || source::open(&c1, None);
    assert!(
        matches!(p.receive_collection(open1, "c1").unwrap(), Received::Imported(r) if r.imported == 3)
    );
    // The same answer again (a retried response): nothing imported twice.
    assert!(matches!(
        p.receive_collection(open1, "c1").unwrap(),
        Received::AlreadyReceived(_)
    ));
    assert_eq!(p.status().unwrap()[0].total, 4);
    // A different collection for the same token is refused.
    let c2 = doc("c2", &["Y1", "Y2", "Y3"]);
    let e = p
        .receive_collection(|| source::open(&c2, None), "c2")
        .unwrap_err();
    assert!(e.to_string().contains("already answered"), "{e}");
    assert!(p.pending_requests().unwrap().is_empty());
    // A new request gets a new token.
    assert_ne!(p.begin_request(G, 3).unwrap().token, t1.token);
}

#[test]
fn generation_respects_the_market() {
    let d = tempfile::tempdir().unwrap();
    let mut p = new_pool(d.path());
    let r = p.generate(G, Market::EuFmd, 500).unwrap();
    assert_eq!(r.imported, 500);
    // Guessing probability: 34^12 / 10,000 serials at most.
    let e = p
        .generate(G, Market::EuFmd, 300_000_000_000_000)
        .unwrap_err();
    assert!(e.to_string().contains("1/10,000"), "{e}");
    let e = p
        .generate("04601234567893", Market::RuCrypto, 10)
        .unwrap_err();
    assert!(e.to_string().contains("issued"), "{e}");
    let us = "00012345678905";
    p.generate(us, Market::UsDscsa, 3).unwrap();
    p.generate(us, Market::UsDscsa, 2).unwrap();
    let mut got = Vec::new();
    p.for_each(us, |s, _| got.push(s.to_string())).unwrap();
    assert_eq!(got, ["1", "2", "3", "4", "5"]);
    assert!(p.verify().unwrap().ok());
}

#[test]
fn russian_codes_keep_their_crypto_tail() {
    let d = tempfile::tempdir().unwrap();
    let mut p = new_pool(d.path());
    let ru = "04601234567893";
    let rec = |s: &str| SerialRecord {
        at: 1,
        serial: s.to_string(),
        ai91: Some("EE07".into()),
        ai92: Some("Ab1+/=cryptocryptocryptocryptocryptocrypto12".into()),
    };
    let src = Source {
        header: None,
        records: Box::new(vec![Ok(rec("ABCDEFGHIJKLM"))].into_iter()),
    };
    p.import(ru, Some(Market::RuCrypto), src, "t").unwrap();
    let mut a = p
        .allocator(ru, "L", "B", AllocatorConfig::default())
        .unwrap();
    let h = a.next_serial().unwrap();
    assert_eq!(h.serial(), "ABCDEFGHIJKLM");
    assert_eq!(h.extra_ais()[0], ("91", "EE07"));
    assert_eq!(h.extra_ai("91"), Some("EE07"));
    assert_eq!(h.extra_ai("21"), None);
    assert_eq!(
        h.extra_ai("92"),
        Some("Ab1+/=cryptocryptocryptocryptocryptocrypto12")
    );
    assert_eq!(h.extra_ai("93"), None);
    a.mark_encoded(&h).unwrap();
    a.close().unwrap();
    // A serial without its tail is refused.
    let e = p
        .import(ru, None, list(&["NOPQRSTUVWXYZ"]), "t")
        .unwrap_err();
    assert!(e.to_string().contains("91"), "{e}");
    assert!(p.verify().unwrap().ok());
}

#[test]
fn verify_finds_every_kind_of_inconsistency() {
    let d = tempfile::tempdir().unwrap();
    let mut p = new_pool(d.path());
    p.import(
        G,
        Some(Market::UsDscsa),
        list(&["A1", "A2", "A3", "A4"]),
        "t",
    )
    .unwrap();
    {
        let mut a = p
            .allocator(
                G,
                "L",
                "B",
                AllocatorConfig {
                    block_size: 2,
                    quantity: Some(2),
                },
            )
            .unwrap();
        for _ in 0..2 {
            let h = a.next_serial().unwrap();
            a.mark_encoded(&h).unwrap();
        }
    }
    assert!(p.verify().unwrap().ok());
    // A state an Unallocated serial cannot have.
    p.store
        .put(
            Space::Ctl,
            &k_over(G, 3),
            &[SerialState::Commissioned.code()],
        )
        .unwrap();
    // The same serial indexed at a second place.
    set_index(&p, "A3", 0);
    // A serial gone from the list: bundle 0 without its entry for seq 1.
    let k = layout::bundle_key(G, 0);
    let mut b = Vec::new();
    for s in ["A1", "A3", "A4"] {
        layout::push_payload(&mut b, s.as_bytes()).unwrap();
    }
    p.store.put(Space::Serials, &k, &b).unwrap();
    let v = p.verify().unwrap();
    let all = v.problems.join("\n");
    assert!(all.contains("cannot reach"), "{all}");
    assert!(all.contains("indexed at seq 0"), "{all}");
    assert!(all.contains("only 3 stored"), "{all}");
    assert!(
        all.contains("`A2` points at seq 1, which holds `A3`"),
        "{all}"
    );
    assert!(!v.ok());
}

/// Point the index entry of `serial` at `seq` (damage for verify tests).
fn set_index(p: &Pool, serial: &str, seq: u64) {
    let k = layout::bucket_key(G, layout::bucket_of(serial.as_bytes()));
    let v = p.store.get(Space::Index, &k).unwrap().unwrap();
    let entries: Vec<_> = layout::bucket_entries(&k, &v)
        .unwrap()
        .into_iter()
        .map(|(s, q)| (s, if s == serial.as_bytes() { seq } else { q }))
        .collect();
    p.store
        .put(Space::Index, &k, &layout::encode_bucket(entries).unwrap())
        .unwrap();
}

#[test]
fn bundles_span_imports_chunks_and_aborted_imports() {
    let d = tempfile::tempdir().unwrap();
    let mut p = new_pool(d.path());
    p.import_chunk = 97;
    let names =
        |from: u32, to: u32| -> Vec<String> { (from..to).map(|i| format!("S{i:05}")).collect() };
    // 300 serials: one full bundle and a partial one; duplicates across chunks.
    let mut first = names(0, 300);
    first.insert(250, "S00010".into());
    first.push("S00000".into());
    let refs: Vec<&str> = first.iter().map(String::as_str).collect();
    let r = p
        .import(G, Some(Market::UsDscsa), list(&refs), "a")
        .unwrap();
    assert_eq!(
        (r.imported, r.duplicates_in_file, r.duplicates_in_pool),
        (300, 2, 0)
    );
    assert!(
        r.duplicate_examples[0].starts_with("a: 251: `S00010`"),
        "{:?}",
        r.duplicate_examples
    );
    // A second import appends to the partial bundle and finds duplicates in the pool.
    let second = names(290, 600);
    let refs: Vec<&str> = second.iter().map(String::as_str).collect();
    let r = p.import(G, None, list(&refs), "b").unwrap();
    assert_eq!((r.imported, r.duplicates_in_pool), (300, 10));
    // An import that fails (bad serial at the end) after staging several chunks
    // leaves the partial bundle as it was.
    let mut third = names(600, 900);
    third.push("bad serial".into());
    let refs: Vec<&str> = third.iter().map(String::as_str).collect();
    assert!(p.import(G, None, list(&refs), "c").is_err());
    let mut got = Vec::new();
    p.for_each(G, |s, _| got.push(s.to_string())).unwrap();
    assert_eq!(got, names(0, 600), "hand-out order is file order");
    assert_eq!(
        p.state_of(G, "S00599").unwrap(),
        Some(SerialState::Unallocated)
    );
    assert_eq!(p.state_of(G, "S00600").unwrap(), None);
    let v = p.verify().unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    // Reserve across bundle boundaries, after a return in the middle.
    p.return_unallocated(G, &["S00256"], "t").unwrap();
    let mut a = p
        .allocator(
            G,
            "L",
            "B",
            AllocatorConfig {
                block_size: 300,
                quantity: None,
            },
        )
        .unwrap();
    let mut out = Vec::new();
    for _ in 0..300 {
        let h = a.next_serial().unwrap();
        out.push(h.serial().to_string());
        a.mark_encoded(&h).unwrap();
    }
    a.close().unwrap();
    assert_eq!(out.get(255).map(String::as_str), Some("S00255"));
    assert_eq!(out.get(256).map(String::as_str), Some("S00257"));
    assert_eq!(out.last().map(String::as_str), Some("S00300"));
    // The freed serials import again after the failed import; a crash mid-import
    // (staged, never committed) is undone at the next open.
    {
        let mut st = stage::Stager::new(&p.store, G, 600).unwrap();
        let mut c = stage::Chunk::default();
        for s in names(600, 1000) {
            c.push(s.as_bytes(), 1).unwrap();
        }
        st.stage(&mut c, "crash").unwrap();
    }
    drop(p);
    let mut p = new_pool(d.path());
    assert_eq!(p.recovery().staged_removed, 400);
    let v = p.verify().unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    let r = p.import(G, None, list(&refs[..300]), "c").unwrap();
    assert_eq!(r.imported, 300);
    let v = p.verify().unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(v.serials, 900);
}

#[test]
fn a_store_in_a_newer_format_is_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    {
        let p = new_pool(d.path());
        let mut ops = Ops::new();
        ops.put(M_FORMAT, &3u64.to_be_bytes());
        p.store.commit(&ops).unwrap();
        p.store.make_durable().unwrap();
    }
    let e = Pool::open(d.path(), OpenMode::MustExist)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("format version 3") && e.contains("reads format version 2"),
        "{e}"
    );
}

/// Rewrite a closed format-2 store the way format 1 stored it: one key per serial in
/// `serials` (GTIN ++ seq → payload) and `index` (GTIN ++ serial → seq), no
/// `m/format`. `extra` adds format-1 serial records (seq, payload) of the first GTIN.
fn to_format1(dir: &Path, extra: &[(u64, &str)]) {
    let db = sled::open(dir.join("store")).unwrap();
    let ctl = db.open_tree("ctl").unwrap();
    let bundles = db.open_tree("bundles").unwrap();
    let buckets = db.open_tree("buckets").unwrap();
    let serials = db.open_tree("serials").unwrap();
    let index = db.open_tree("index").unwrap();
    for kv in bundles.iter() {
        let (k, v) = kv.unwrap();
        let (g, n) = k.split_at(14);
        let base = layout::bundle_start(u64::from_be_bytes(n.try_into().unwrap()));
        for (seq, p) in (base..).zip(layout::bundle_payloads(&k, &v).unwrap()) {
            serials.insert([g, &seq.to_be_bytes()].concat(), p).unwrap();
        }
    }
    for kv in buckets.iter() {
        let (k, v) = kv.unwrap();
        for (s, seq) in layout::bucket_entries(&k, &v).unwrap() {
            index
                .insert([k.get(..14).unwrap(), s].concat(), &seq.to_be_bytes())
                .unwrap();
        }
    }
    for (seq, p) in extra {
        serials
            .insert([G.as_bytes(), &seq.to_be_bytes()].concat(), p.as_bytes())
            .unwrap();
    }
    db.drop_tree("bundles").unwrap();
    db.drop_tree("buckets").unwrap();
    ctl.remove(M_FORMAT).unwrap();
    db.flush().unwrap();
}

#[test]
fn a_format1_store_is_backed_up_and_migrated() {
    let d = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..700).map(|i| format!("M{i:04}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let before;
    {
        let mut p = new_pool(d.path());
        p.import(G, Some(Market::UsDscsa), list(&refs), "t")
            .unwrap();
        p.generate("00012345678905", Market::UsDscsa, 5).unwrap();
        p.return_unallocated(G, &["M0600"], "t").unwrap();
        let mut a = p
            .allocator(
                G,
                "L",
                "B",
                AllocatorConfig {
                    block_size: 10,
                    quantity: None,
                },
            )
            .unwrap();
        for _ in 0..3 {
            let h = a.next_serial().unwrap();
            a.mark_encoded(&h).unwrap();
        }
        a.next_serial().unwrap();
        // The process dies with the block open.
        std::mem::forget(a);
        let mut got = Vec::new();
        p.for_each(G, |s, _| got.push(s.to_string())).unwrap();
        before = got;
    }
    // A format-1 store with a staged serial past next_seq (an unfinished import).
    to_format1(d.path(), &[(700, "STAGED")]);
    let mut p = new_pool(d.path());
    let backup = p.recovery().migrated_from_format1.clone().unwrap();
    assert!(backup.join("COMPLETE").is_file() && backup.join("store/db").is_file());
    assert!(backup.join("hwm").is_file());
    assert!(!d.path().join(migrate::BUILD_DIR).exists());
    assert_eq!(p.recovery().blocks_closed, 1);
    let mut got = Vec::new();
    p.for_each(G, |s, _| got.push(s.to_string())).unwrap();
    assert_eq!(got, before);
    assert_eq!(p.state_of(G, "M0002").unwrap(), Some(SerialState::Encoded));
    assert_eq!(
        p.state_of(G, "M0003").unwrap(),
        Some(SerialState::SnInvalid)
    );
    assert_eq!(p.state_of(G, "M0600").unwrap(), Some(SerialState::Returned));
    assert_eq!(p.state_of(G, "STAGED").unwrap(), None);
    let v = p.verify().unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(v.serials, 705);
    // Duplicates are still found against the migrated pool; hand-out goes on after
    // the invalidated block.
    let r = p.import(G, None, list(&["M0001", "NEW1"]), "t").unwrap();
    assert_eq!((r.imported, r.duplicates_in_pool), (1, 1));
    let mut a = p
        .allocator(G, "L", "B", AllocatorConfig::default())
        .unwrap();
    assert_eq!(a.next_serial().unwrap().serial(), "M0010");
    drop(a);
    drop(p);
    // Opened again: format 2, nothing migrated twice.
    let p = new_pool(d.path());
    assert!(p.recovery().migrated_from_format1.is_none());
    assert!(p.verify().unwrap().ok());
}

#[test]
fn a_format1_store_that_is_inconsistent_is_not_migrated() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut p = new_pool(d.path());
        p.import(G, Some(Market::UsDscsa), list(&["A1", "A2", "A3"]), "t")
            .unwrap();
    }
    // seq 2 holds A1 again.
    to_format1(d.path(), &[(2, "A1")]);
    let e = Pool::open(d.path(), OpenMode::MustExist)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("cannot migrate store format 1") && e.contains("A1"),
        "{e}"
    );
    // Still format 1, untouched, still refused the same way.
    assert!(!d.path().join(migrate::BUILD_DIR).exists());
    assert!(!d.path().join(migrate::BACKUP_DIR).exists());
    let e2 = Pool::open(d.path(), OpenMode::MustExist)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(e, e2);
}

#[test]
fn an_interrupted_migration_is_finished_or_redone() {
    for marker_written in [false, true] {
        let d = tempfile::tempdir().unwrap();
        {
            let mut p = new_pool(d.path());
            p.import(G, Some(Market::UsDscsa), list(&["A1", "A2", "A3"]), "t")
                .unwrap();
        }
        to_format1(d.path(), &[]);
        // The process dies after building the new store (and, the second time, after
        // marking it complete), before the directories are swapped.
        {
            let cfg = SledConfig::default();
            let old = SledStore::open(&d.path().join("store"), false, &cfg).unwrap();
            let build = d.path().join(migrate::BUILD_DIR);
            assert_eq!(
                migrate::build_format2(d.path(), &old, &build, &cfg).unwrap(),
                3
            );
            if marker_written {
                std::fs::write(build.join(migrate::MARKER), b"").unwrap();
            }
        }
        let p = new_pool(d.path());
        // Without the marker the migration ran again at open; with it, open finished it.
        assert!(p.recovery().migrated_from_format1.is_some());
        assert!(d.path().join("backup-format1/COMPLETE").is_file());
        assert!(!d.path().join(migrate::BUILD_DIR).exists());
        assert!(!d.path().join("store").join(migrate::MARKER).exists());
        assert_eq!(p.state_of(G, "A2").unwrap(), Some(SerialState::Unallocated));
        let v = p.verify().unwrap();
        assert!(v.ok() && v.serials == 3, "{:?}", v.problems);
    }
}

#[test]
fn a_shared_allocator_keeps_its_block_while_others_use_the_pool() {
    const CASE: &str = "19506000134359";
    let d = tempfile::tempdir().unwrap();
    let mut p = new_pool(d.path());
    p.import(
        G,
        Some(Market::UsDscsa),
        list(&["U1", "U2", "U3", "U4", "U5"]),
        "t",
    )
    .unwrap();
    p.import(CASE, Some(Market::UsDscsa), list(&["C1", "C2"]), "t")
        .unwrap();
    let shared: SharedPool = std::sync::Arc::new(std::sync::Mutex::new(p));
    let mut units = SharedAllocator::new(
        &shared,
        G,
        "L1",
        "B1",
        AllocatorConfig {
            block_size: 3,
            quantity: None,
        },
    )
    .unwrap();
    let u1 = units.next_serial().unwrap();
    // Between two unit serials another user takes a case serial from the same pool.
    {
        let mut g = alloc::lock(&shared).unwrap();
        let mut cases = g
            .allocator(
                CASE,
                "L1",
                "B1",
                AllocatorConfig {
                    block_size: 1,
                    quantity: None,
                },
            )
            .unwrap();
        let c = cases.next_serial().unwrap();
        assert_eq!(c.serial(), "C1");
        cases.mark_encoded(&c).unwrap();
        cases.close().unwrap();
        g.set_state(CASE, &["C1"], SerialState::Commissioned)
            .unwrap();
    }
    // The unit block goes on where it was: no serial skipped, none twice.
    let u2 = units.next_serial().unwrap();
    assert_eq!((u1.serial(), u2.serial()), ("U1", "U2"));
    assert_eq!(u1.block, u2.block);
    units.mark_encoded(&u2).unwrap();
    assert_eq!(units.available().unwrap(), 3);
    units
        .pool()
        .unwrap()
        .set_state(G, &["U1"], SerialState::Commissioned)
        .unwrap();
    units.close().unwrap();
    let g = alloc::lock(&shared).unwrap();
    assert_eq!(g.state_of(G, "U2").unwrap(), Some(SerialState::Encoded));
    // The unused tail of the closed block is invalid, the rest untouched.
    assert_eq!(g.state_of(G, "U3").unwrap(), Some(SerialState::SnInvalid));
    assert_eq!(g.state_of(G, "U4").unwrap(), Some(SerialState::Unallocated));
    assert_eq!(
        g.state_of(CASE, "C1").unwrap(),
        Some(SerialState::Commissioned)
    );
    assert_eq!(
        g.state_of(CASE, "C2").unwrap(),
        Some(SerialState::Unallocated)
    );
    assert!(g.verify().unwrap().ok());
}

/// State changes read each serial's block record from the store as it is now (no copy
/// of it is kept): after a block is used up and the next one reserved, after Encoded
/// moves, after a refused change (whose writes must not ride along with the next
/// commit) and after crash recovery closed the open block.
#[test]
fn state_changes_follow_the_block_records_through_refills_and_recovery() {
    let d = tempfile::tempdir().unwrap();
    let mut p = new_pool(d.path());
    let serials = ["S1", "S2", "S3", "S4", "S5", "S6", "S7"];
    p.import(G, Some(Market::UsDscsa), list(&serials), "t")
        .unwrap();
    let mut a = p.allocator(G, "L1", "B1", cfg_of(3)).unwrap();
    let h: Vec<Handed> = (0..3).map(|_| a.next_serial().unwrap()).collect();
    a.mark_encoded(&h[1]).unwrap();
    let pool = a.pool_mut();
    pool.set_state(G, &["S1"], SerialState::Commissioned)
        .unwrap();
    // S3 is Allocated (handed out, never sent): refused, and S2's write is not kept.
    let e = pool
        .set_state(G, &["S2", "S3"], SerialState::Commissioned)
        .unwrap_err();
    assert!(matches!(e, PoolError::Transition { .. }), "{e}");
    // A repeated report is refused too.
    pool.set_state(G, &["S1"], SerialState::Commissioned)
        .unwrap_err();
    assert_eq!(pool.state_of(G, "S2").unwrap(), Some(SerialState::Encoded));
    // Block 1 used up: the next serial reserves block 2 and closes block 1, so S3
    // (never marked Encoded) is SNInvalid from then on.
    let h4 = a.next_serial().unwrap();
    assert_eq!((h4.serial(), h4.block), ("S4", h[0].block + 1));
    let pool = a.pool_mut();
    assert_eq!(
        pool.state_of(G, "S3").unwrap(),
        Some(SerialState::SnInvalid)
    );
    pool.set_state(G, &["S3"], SerialState::Commissioned)
        .unwrap_err();
    pool.set_state(G, &["S4"], SerialState::Commissioned)
        .unwrap_err();
    a.mark_encoded(&h4).unwrap();
    a.pool_mut()
        .set_state(G, &["S2", "S4"], SerialState::Commissioned)
        .unwrap();
    let h5 = a.next_serial().unwrap();
    a.mark_encoded(&h5).unwrap();
    // Crash with block 2 open: S5 Encoded, S6 reserved and never handed out.
    std::mem::forget(a);
    drop(p);
    let mut p = new_pool(d.path());
    assert_eq!(p.recovery().blocks_closed, 1);
    p.set_state(G, &["S5"], SerialState::LabelScrapped).unwrap();
    p.set_state(G, &["S6"], SerialState::Commissioned)
        .unwrap_err();
    let states: Vec<_> = serials
        .iter()
        .map(|s| p.state_of(G, s).unwrap().unwrap())
        .collect();
    use SerialState::*;
    assert_eq!(
        states,
        [
            Commissioned,
            Commissioned,
            SnInvalid,
            Commissioned,
            LabelScrapped,
            SnInvalid,
            Unallocated
        ]
    );
    // A new allocator after recovery starts past every reserved serial.
    let mut a = p.allocator(G, "L1", "B2", cfg_of(3)).unwrap();
    let h7 = a.next_serial().unwrap();
    assert_eq!(h7.serial(), "S7");
    // The pool is dry: refused, and the used-up block stays the allocator's (marked
    // and closed with it, not left open).
    assert!(matches!(
        a.next_serial(),
        Err(PoolError::InsufficientSerialNumbers { .. })
    ));
    a.mark_encoded(&h7).unwrap();
    assert_eq!(a.in_hand(), 0);
    drop(a);
    assert_eq!(p.state_of(G, "S7").unwrap(), Some(SerialState::Encoded));
    let v = p.verify().unwrap();
    assert!(v.ok(), "{:?}", v.problems);
}

fn cfg_of(block_size: u64) -> AllocatorConfig {
    AllocatorConfig {
        block_size,
        quantity: None,
    }
}

#[test]
fn payloads_are_held_inline_up_to_the_store_limit() {
    let p = alloc::Payload::new("A1\u{1d}91EE07").unwrap();
    assert_eq!(p.as_str(), "A1\u{1d}91EE07");
    assert_eq!(format!("{p:?}"), format!("{:?}", "A1\u{1d}91EE07"));
    assert!(alloc::Payload::new(&"x".repeat(255)).is_some());
    assert!(alloc::Payload::new(&"x".repeat(256)).is_none());
    let mut ops = Ops::new();
    ops.put(b"k1", b"v1");
    ops.del(b"k2");
    ops.put_with(b"k3", |b| b.extend_from_slice(b"v3"));
    ops.put(b"", b"");
    let got: Vec<Op<'_>> = ops.iter().collect();
    assert_eq!(
        got,
        [
            Op::Put(b"k1", b"v1"),
            Op::Del(b"k2"),
            Op::Put(b"k3", b"v3"),
            Op::Put(b"", b"")
        ]
    );
    ops.clear();
    assert!(ops.is_empty() && ops.iter().next().is_none());
}
