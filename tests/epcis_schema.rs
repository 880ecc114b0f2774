//! Every kind of EPCIS document linectl emits validates against the vendored GS1 EPCIS
//! 2.0 JSON schema (`tests/data/epcis/EPCIS-JSON-Schema.json`, draft-07, formats
//! checked): commissioning, rejected-and-destroyed, crash-recovery invalidation, QA
//! sample, aggregation ADD and DELETE, each with Digital Link and with EPC URN
//! identifiers, each with its hash eventID. The GS1 examples must pass and broken
//! documents must fail, so the validator is known to bite.

use std::path::Path;

use linectl::epcis::{
    CompanyPrefixLen, EpcisDocument, EpcisError, Event, EventTime, IdForm, LineEvents, Sgln, Sscc,
};
use serde_json::Value;

fn load(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator() -> jsonschema::Validator {
    let schema = load("tests/data/epcis/EPCIS-JSON-Schema.json");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn all_kinds(form: IdForm) -> Result<Vec<(&'static str, Event)>, EpcisError> {
    let line = LineEvents::new(
        form,
        "04012345111118",
        &Sgln::new("4012345000054", Some("L1"))?,
        &Sgln::new("4012345000054", None)?,
    )?;
    let t = EventTime::new(1_764_532_800_123, 60)?;
    let case = Sscc::new("340123451111111111")?;
    let serials = ["100001", "A/B\"&%<>?!(),:*+';=", "X_9-.z"];
    Ok(vec![
        (
            "commissioning",
            line.commissioning(t, &serials, "LOT-42/A", "281200")?,
        ),
        (
            "rejected_destroyed",
            line.rejected_destroyed(t, &serials[..1])?,
        ),
        ("invalidated", line.invalidated(t, &serials[1..])?),
        ("sampled", line.sampled(t, &serials[2..])?),
        ("aggregate", line.aggregate(t, &case, &serials)?),
        (
            "disaggregate_some",
            line.disaggregate(t, &case, &serials[..1])?,
        ),
        ("disaggregate_all", line.disaggregate(t, &case, &[])?),
    ])
}

#[test]
fn gs1_examples_validate() {
    let v = validator();
    for ex in [
        "tests/data/epcis/Example_9.6.1-ObjectEvent.jsonld",
        "tests/data/epcis/Example_9.6.3-AggregationEvent.jsonld",
    ] {
        let errs = errors(&v, &load(ex));
        assert!(errs.is_empty(), "{ex}: {errs:?}");
    }
}

#[test]
fn every_emitted_document_validates() -> Result<(), EpcisError> {
    let v = validator();
    let forms = [
        ("digital link", IdForm::DigitalLink),
        (
            "epc urn",
            IdForm::EpcUrn {
                company_prefix_len: CompanyPrefixLen::new(7)?,
            },
        ),
    ];
    let mut checked = 0;
    let creation = EventTime::new(1_764_532_801_000, 0)?;
    for (form_name, form) in forms {
        let mut all = Vec::new();
        for (kind, event) in all_kinds(form)? {
            let event = event.with_hash_id()?;
            assert!(
                event
                    .event_id()
                    .is_some_and(|id| id.starts_with("ni:///sha-256;"))
            );
            let doc = EpcisDocument {
                creation_date: creation,
                events: vec![event.clone()],
            }
            .to_json();
            let errs = errors(&v, &doc);
            assert!(errs.is_empty(), "{kind} ({form_name}): {errs:?}\n{doc:#}");
            let standalone = event.to_standalone_json();
            let errs = errors(&v, &standalone);
            assert!(errs.is_empty(), "{kind} standalone ({form_name}): {errs:?}");
            checked += 1;
            all.push(event);
        }
        let doc = EpcisDocument {
            creation_date: creation,
            events: all,
        }
        .to_json();
        let errs = errors(&v, &doc);
        assert!(
            errs.is_empty(),
            "all kinds in one document ({form_name}): {errs:?}"
        );
    }
    println!(
        "schema-validated {checked} event kinds x identifier forms, plus 2 combined documents"
    );
    Ok(())
}

/// A named way to break a valid document.
type Breakage = (&'static str, fn(&mut Value));

#[test]
fn broken_documents_fail_validation() -> Result<(), EpcisError> {
    let v = validator();
    let (_, event) = all_kinds(IdForm::DigitalLink)?.remove(0);
    let good = EpcisDocument {
        creation_date: EventTime::new(0, 0)?,
        events: vec![event],
    }
    .to_json();
    assert!(errors(&v, &good).is_empty());
    let breakages: [Breakage; 4] = [
        ("unknown bare bizStep", |d| {
            d["epcisBody"]["eventList"][0]["bizStep"] = "commisioning".into();
        }),
        ("bad action", |d| {
            d["epcisBody"]["eventList"][0]["action"] = "ADDED".into();
        }),
        ("no creationDate", |d| {
            if let Some(m) = d.as_object_mut() {
                m.remove("creationDate");
            }
        }),
        ("eventTime not a date-time", |d| {
            d["epcisBody"]["eventList"][0]["eventTime"] = "yesterday".into();
        }),
    ];
    for (what, breakage) in breakages {
        let mut bad = good.clone();
        breakage(&mut bad);
        assert!(!errors(&v, &bad).is_empty(), "{what} passed validation");
    }
    Ok(())
}
