//! The CBV 2.0 event hash ID: the canonical pre-hash string of an EPCIS 2.0 JSON(-LD)
//! event and its SHA-256 as `ni:///sha-256;<hex>?ver=CBV2.0`. It works on
//! `serde_json::Value` so documents from anywhere (conformance vectors, the site server)
//! hash the same way as linectl's own typed events. It does not parse XML and does no
//! general JSON-LD processing: prefixes come from the document's inline `@context`
//! objects plus the EPCIS 2.0 context's well-known ones.
//!
//! The pre-hash string, as the conformance vectors define it:
//! 1. `eventType=<type>`, then the standard fields in this fixed order: eventTime,
//!    eventTimeZoneOffset, certificationInfo, parentID, epcList, inputEPCList, childEPCs,
//!    quantityList, childQuantityList, inputQuantityList, outputEPCList,
//!    outputQuantityList, action, transformationID, bizStep, disposition,
//!    persistentDisposition (set, unset), readPoint (id), bizLocation (id),
//!    sensorElementList (sensorMetadata, sensorReport with their own field orders).
//! 2. Then every other field, each rendered on its own and the renderings sorted by
//!    code point: bizTransactionList, sourceList, destinationList (each entry
//!    `type=…` then the value), ilmd, and user extensions as `{namespace}localName`.
//!    Extensions nested in readPoint, bizLocation, sensor elements, metadata and reports
//!    follow that element's ordered fields, sorted the same way.
//! 3. Repeated elements (list entries) are sorted by their rendered text; empty values
//!    and empty lists vanish; `key=value` pairs and list names are concatenated with no
//!    separator.
//! 4. Values: timestamps become UTC with millisecond precision (half-up) and `Z`;
//!    CBV vocabulary given as bare words or old `urn:epcglobal:cbv:` URNs becomes the
//!    `https://ref.gs1.org/cbv/…` web URI (sensor types and alert types
//!    `https://gs1.org/voc/…`); CURIEs of known prefixes are expanded; EPC URNs and GS1
//!    Digital Link URIs on any domain become constrained canonical Digital Link URIs
//!    (see [`super::ids::canonical_id`]); JSON numbers lose trailing zeros; strings are
//!    trimmed.
//! 5. Left out: `eventID`, `recordTime`, `errorDeclaration` (so declaring an error later
//!    keeps the ID), `@context`, `rdfs:comment`, and fields a document lists under an
//!    `…:ignoreFields` key.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::EpcisError;
use super::ids::canonical_id;
use super::time::normalise_timestamp;

/// Prefixes of the EPCIS 2.0 JSON-LD context that documents use without declaring them.
const DEFAULT_PREFIXES: &[(&str, &str)] = &[
    ("epcis", "https://ref.gs1.org/epcis/"),
    ("cbv", "https://ref.gs1.org/cbv/"),
    ("cbvmda", "urn:epcglobal:cbv:mda:"),
    ("gs1", "https://gs1.org/voc/"),
    ("rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"),
    ("rdfs", "http://www.w3.org/2000/01/rdf-schema#"),
    ("owl", "http://www.w3.org/2002/07/owl#"),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ("dcterms", "http://purl.org/dc/terms/"),
];

/// What the hash needs from outside the event: namespace prefixes and fields to leave
/// out.
#[derive(Debug, Clone)]
pub struct HashContext {
    prefixes: Vec<(String, String)>,
    ignore_fields: Vec<String>,
}

impl Default for HashContext {
    fn default() -> Self {
        HashContext::epcis_default()
    }
}

impl HashContext {
    /// The EPCIS 2.0 context's prefixes only.
    pub fn epcis_default() -> Self {
        HashContext {
            prefixes: DEFAULT_PREFIXES
                .iter()
                .map(|(p, ns)| ((*p).to_owned(), (*ns).to_owned()))
                .collect(),
            ignore_fields: Vec::new(),
        }
    }

    /// Adds (or overrides) a prefix.
    pub fn with_prefix(mut self, prefix: &str, namespace: &str) -> Self {
        self.prefixes.retain(|(p, _)| p != prefix);
        self.prefixes
            .push((prefix.to_owned(), namespace.to_owned()));
        self
    }

    /// The context of an EPCIS document: inline `@context` prefixes, and an
    /// `…:ignoreFields` list on the document or its `queryResults`.
    pub fn from_document(doc: &Value) -> Self {
        let mut ctx = HashContext::epcis_default();
        let contexts: Vec<&Value> = match doc.get("@context") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        };
        for c in contexts {
            if let Value::Object(map) = c {
                for (prefix, ns) in map {
                    if let Value::String(ns) = ns {
                        ctx = ctx.with_prefix(prefix, ns);
                    }
                }
            }
        }
        let holders = [
            Some(doc),
            doc.get("epcisBody").and_then(|b| b.get("queryResults")),
        ];
        for holder in holders.into_iter().flatten() {
            if let Some(map) = holder.as_object() {
                for (k, v) in map {
                    if (k == "ignoreFields" || k.ends_with(":ignoreFields"))
                        && let Value::Array(fields) = v
                    {
                        ctx.ignore_fields
                            .extend(fields.iter().filter_map(Value::as_str).map(String::from));
                    }
                }
            }
        }
        ctx
    }

    fn namespace(&self, prefix: &str) -> Option<&str> {
        self.prefixes
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, ns)| ns.as_str())
    }

    /// `prefix:local` → `{namespace}local` for a known prefix; other names unchanged.
    fn expand_key(&self, key: &str) -> String {
        if let Some((prefix, local)) = key.split_once(':')
            && !local.starts_with("//")
            && let Some(ns) = self.namespace(prefix)
        {
            return format!("{{{ns}}}{local}");
        }
        key.to_owned()
    }

    /// `prefix:local` → `namespacelocal` for a known prefix (a CURIE value).
    fn expand_curie(&self, value: &str) -> Option<String> {
        let (prefix, local) = value.split_once(':')?;
        if local.starts_with("//") {
            return None;
        }
        Some(format!("{}{local}", self.namespace(prefix)?))
    }
}

/// The kind of a standard field's value, which decides its canonicalisation.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// xsd:dateTime.
    Time,
    /// Kept as given (trimmed).
    Plain,
    /// An identifier or other URI: EPC URN / Digital Link canonicalisation, CURIEs.
    Id,
    /// CBV vocabulary: bare words get this web-URI prefix; old URNs with the given
    /// `urn:epcglobal:cbv:…:` prefix map to it too.
    Vocab(&'static str, &'static str),
}

const BIZ_STEP: Kind = Kind::Vocab(
    "https://ref.gs1.org/cbv/BizStep-",
    "urn:epcglobal:cbv:bizstep:",
);
const DISP: Kind = Kind::Vocab("https://ref.gs1.org/cbv/Disp-", "urn:epcglobal:cbv:disp:");
const BTT: Kind = Kind::Vocab("https://ref.gs1.org/cbv/BTT-", "urn:epcglobal:cbv:btt:");
const SDT: Kind = Kind::Vocab("https://ref.gs1.org/cbv/SDT-", "urn:epcglobal:cbv:sdt:");
const GS1_VOC: Kind = Kind::Vocab("https://gs1.org/voc/", "urn:gs1:voc:");
const COMP: Kind = Kind::Vocab("https://ref.gs1.org/cbv/Comp-", "urn:epcglobal:cbv:comp:");

const SENSOR_METADATA: &[(&str, Kind)] = &[
    ("time", Kind::Time),
    ("startTime", Kind::Time),
    ("endTime", Kind::Time),
    ("deviceID", Kind::Id),
    ("deviceMetadata", Kind::Id),
    ("rawData", Kind::Id),
    ("dataProcessingMethod", Kind::Id),
    ("bizRules", Kind::Id),
];

const SENSOR_REPORT: &[(&str, Kind)] = &[
    ("type", GS1_VOC),
    ("exception", GS1_VOC),
    ("deviceID", Kind::Id),
    ("deviceMetadata", Kind::Id),
    ("rawData", Kind::Id),
    ("dataProcessingMethod", Kind::Id),
    ("time", Kind::Time),
    ("microorganism", Kind::Id),
    ("chemicalSubstance", Kind::Id),
    ("value", Kind::Plain),
    ("component", COMP),
    ("stringValue", Kind::Plain),
    ("booleanValue", Kind::Plain),
    ("hexBinaryValue", Kind::Plain),
    ("uriValue", Kind::Id),
    ("minValue", Kind::Plain),
    ("maxValue", Kind::Plain),
    ("meanValue", Kind::Plain),
    ("sDev", Kind::Plain),
    ("percRank", Kind::Plain),
    ("percValue", Kind::Plain),
    ("uom", Kind::Plain),
    ("coordinateReferenceSystem", Kind::Id),
];

const QUANTITY_ELEMENT: &[(&str, Kind)] = &[
    ("epcClass", Kind::Id),
    ("quantity", Kind::Plain),
    ("uom", Kind::Plain),
];

/// Top-level fields never hashed.
const EXCLUDED: &[&str] = &[
    "type",
    "eventID",
    "recordTime",
    "errorDeclaration",
    "@context",
    "rdfs:comment",
];

/// Where a value sits, for error messages.
fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A JSON number in canonical text: integers without a fraction, others shortest.
fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => format!("{f}"),
        None => n.to_string(),
    }
}

fn canon_scalar(
    value: &Value,
    kind: Kind,
    ctx: &HashContext,
    path: &str,
) -> Result<Option<String>, EpcisError> {
    let s = match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => return Ok(Some(b.to_string())),
        Value::Number(n) => return Ok(Some(number_text(n))),
        Value::String(s) => s.trim(),
        Value::Array(_) | Value::Object(_) => {
            return Err(EpcisError::Hash(format!(
                "{path}: expected a single value, found {value}"
            )));
        }
    };
    if s.is_empty() {
        return Ok(None);
    }
    Ok(Some(match kind {
        Kind::Time => {
            normalise_timestamp(s).map_err(|e| EpcisError::Hash(format!("{path}: {e}")))?
        }
        Kind::Plain => s.to_owned(),
        Kind::Id => canon_uri(s, ctx),
        Kind::Vocab(web, urn) => {
            if let Some(word) = s.strip_prefix(urn) {
                format!("{web}{word}")
            } else if !s.contains(':') {
                format!("{web}{s}")
            } else {
                canon_uri(s, ctx)
            }
        }
    }))
}

fn canon_uri(s: &str, ctx: &HashContext) -> String {
    if s.starts_with("urn:") || s.starts_with("http://") || s.starts_with("https://") {
        canonical_id(s)
    } else {
        ctx.expand_curie(s).unwrap_or_else(|| s.to_owned())
    }
}

/// `name=value` of a standard scalar field, or nothing if empty.
fn scalar_field(
    obj: &Map<String, Value>,
    name: &str,
    kind: Kind,
    ctx: &HashContext,
    path: &str,
) -> Result<String, EpcisError> {
    match obj.get(name) {
        None => Ok(String::new()),
        Some(Value::Array(items)) => {
            // A repeated scalar (e.g. set/unset): one entry each, sorted.
            let mut parts = Vec::new();
            for item in items {
                if let Some(v) = canon_scalar(item, kind, ctx, &at(path, name))? {
                    parts.push(format!("{name}={v}"));
                }
            }
            parts.sort();
            Ok(parts.concat())
        }
        Some(v) => Ok(canon_scalar(v, kind, ctx, &at(path, name))?
            .map(|v| format!("{name}={v}"))
            .unwrap_or_default()),
    }
}

/// An object with an ordered set of scalar fields, followed by its other fields
/// rendered generically and sorted. Returns the body without the element's own name.
fn ordered_object(
    obj: &Map<String, Value>,
    order: &[(&str, Kind)],
    ctx: &HashContext,
    path: &str,
) -> Result<String, EpcisError> {
    let mut out = String::new();
    for (name, kind) in order {
        out.push_str(&scalar_field(obj, name, *kind, ctx, path)?);
    }
    let known: Vec<&str> = order.iter().map(|(n, _)| *n).collect();
    out.push_str(&extensions(obj, &known, ctx, path)?);
    Ok(out)
}

/// The fields of `obj` not in `known`, rendered generically and sorted.
fn extensions(
    obj: &Map<String, Value>,
    known: &[&str],
    ctx: &HashContext,
    path: &str,
) -> Result<String, EpcisError> {
    let mut parts = Vec::new();
    for (k, v) in obj {
        if known.contains(&k.as_str()) {
            continue;
        }
        generic(&ctx.expand_key(k), v, ctx, &at(path, k), &mut parts)?;
    }
    parts.sort();
    Ok(parts.concat())
}

/// Renders a user-extension (or ILMD) field generically into `parts`: strings are
/// canonicalised as identifiers, objects become `name` + their sorted children, arrays
/// give one entry per element.
fn generic(
    name: &str,
    value: &Value,
    ctx: &HashContext,
    path: &str,
    parts: &mut Vec<String>,
) -> Result<(), EpcisError> {
    match value {
        Value::Array(items) => {
            for item in items {
                generic(name, item, ctx, path, parts)?;
            }
        }
        Value::Object(map) => {
            let body = extensions(map, &[], ctx, path)?;
            parts.push(format!("{name}{body}"));
        }
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                parts.push(name.to_owned());
            } else {
                let v = if s.starts_with("urn:epc:") || s.starts_with("http") {
                    canonical_id(s)
                } else {
                    s.to_owned()
                };
                parts.push(format!("{name}={v}"));
            }
        }
        Value::Number(n) => parts.push(format!("{name}={}", number_text(n))),
        Value::Bool(b) => parts.push(format!("{name}={b}")),
        Value::Null => {}
    }
    Ok(())
}

fn as_array<'a>(value: &'a Value, path: &str) -> Result<&'a [Value], EpcisError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| EpcisError::Hash(format!("{path}: expected a list")))
}

fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, EpcisError> {
    value
        .as_object()
        .ok_or_else(|| EpcisError::Hash(format!("{path}: expected an object")))
}

/// `name` + sorted entries, or nothing if there are none.
fn list(name: &str, mut entries: Vec<String>) -> String {
    entries.retain(|e| !e.is_empty());
    if entries.is_empty() {
        return String::new();
    }
    entries.sort();
    format!("{name}{}", entries.concat())
}

fn epc_list(name: &str, value: &Value, ctx: &HashContext) -> Result<String, EpcisError> {
    let mut entries = Vec::new();
    for (i, item) in as_array(value, name)?.iter().enumerate() {
        if let Some(v) = canon_scalar(item, Kind::Id, ctx, &format!("{name}[{i}]"))? {
            entries.push(format!("epc={v}"));
        }
    }
    Ok(list(name, entries))
}

fn quantity_list(name: &str, value: &Value, ctx: &HashContext) -> Result<String, EpcisError> {
    let mut entries = Vec::new();
    for (i, item) in as_array(value, name)?.iter().enumerate() {
        let path = format!("{name}[{i}]");
        let body = ordered_object(as_object(item, &path)?, QUANTITY_ELEMENT, ctx, &path)?;
        if !body.is_empty() {
            entries.push(format!("quantityElement{body}"));
        }
    }
    Ok(list(name, entries))
}

fn location(name: &str, value: &Value, ctx: &HashContext) -> Result<String, EpcisError> {
    let body = ordered_object(as_object(value, name)?, &[("id", Kind::Id)], ctx, name)?;
    Ok(if body.is_empty() {
        String::new()
    } else {
        format!("{name}{body}")
    })
}

fn sensor_element_list(value: &Value, ctx: &HashContext) -> Result<String, EpcisError> {
    let name = "sensorElementList";
    let mut entries = Vec::new();
    for (i, item) in as_array(value, name)?.iter().enumerate() {
        let path = format!("{name}[{i}]");
        let element = as_object(item, &path)?;
        let mut body = String::new();
        if let Some(meta) = element.get("sensorMetadata") {
            let p = at(&path, "sensorMetadata");
            let m = ordered_object(as_object(meta, &p)?, SENSOR_METADATA, ctx, &p)?;
            if !m.is_empty() {
                body.push_str("sensorMetadata");
                body.push_str(&m);
            }
        }
        if let Some(reports) = element.get("sensorReport") {
            let mut rs = Vec::new();
            for (j, r) in as_array(reports, &at(&path, "sensorReport"))?
                .iter()
                .enumerate()
            {
                let p = format!("{path}.sensorReport[{j}]");
                let b = ordered_object(as_object(r, &p)?, SENSOR_REPORT, ctx, &p)?;
                if !b.is_empty() {
                    rs.push(format!("sensorReport{b}"));
                }
            }
            rs.sort();
            body.push_str(&rs.concat());
        }
        body.push_str(&extensions(
            element,
            &["sensorMetadata", "sensorReport"],
            ctx,
            &path,
        )?);
        if !body.is_empty() {
            entries.push(format!("sensorElement{body}"));
        }
    }
    Ok(list(name, entries))
}

/// bizTransactionList / sourceList / destinationList: each entry `type=…` then
/// `<value_key>=…`, entries sorted.
fn typed_list(
    name: &str,
    value_key: &str,
    type_kind: Kind,
    value: &Value,
    ctx: &HashContext,
) -> Result<String, EpcisError> {
    let mut entries = Vec::new();
    for (i, item) in as_array(value, name)?.iter().enumerate() {
        let path = format!("{name}[{i}]");
        let obj = as_object(item, &path)?;
        let mut e = scalar_field(obj, "type", type_kind, ctx, &path)?;
        e.push_str(&scalar_field(obj, value_key, Kind::Id, ctx, &path)?);
        entries.push(e);
    }
    Ok(list(name, entries))
}

fn persistent_disposition(value: &Value, ctx: &HashContext) -> Result<String, EpcisError> {
    let name = "persistentDisposition";
    let obj = as_object(value, name)?;
    let mut body = scalar_field(obj, "set", DISP, ctx, name)?;
    body.push_str(&scalar_field(obj, "unset", DISP, ctx, name)?);
    Ok(if body.is_empty() {
        String::new()
    } else {
        format!("{name}{body}")
    })
}

/// The standard fields in hash order (after eventType).
const ORDER: &[&str] = &[
    "eventTime",
    "eventTimeZoneOffset",
    "certificationInfo",
    "parentID",
    "epcList",
    "inputEPCList",
    "childEPCs",
    "quantityList",
    "childQuantityList",
    "inputQuantityList",
    "outputEPCList",
    "outputQuantityList",
    "action",
    "transformationID",
    "bizStep",
    "disposition",
    "persistentDisposition",
    "readPoint",
    "bizLocation",
    "sensorElementList",
];

fn ordered_field(
    obj: &Map<String, Value>,
    key: &str,
    value: &Value,
    ctx: &HashContext,
) -> Result<String, EpcisError> {
    match key {
        "eventTime" => scalar_field(obj, key, Kind::Time, ctx, ""),
        "eventTimeZoneOffset" | "action" => scalar_field(obj, key, Kind::Plain, ctx, ""),
        "certificationInfo" | "parentID" | "transformationID" => {
            scalar_field(obj, key, Kind::Id, ctx, "")
        }
        "epcList" | "inputEPCList" | "childEPCs" | "outputEPCList" => epc_list(key, value, ctx),
        "quantityList" | "childQuantityList" | "inputQuantityList" | "outputQuantityList" => {
            quantity_list(key, value, ctx)
        }
        "bizStep" => scalar_field(obj, key, BIZ_STEP, ctx, ""),
        "disposition" => scalar_field(obj, key, DISP, ctx, ""),
        "persistentDisposition" => persistent_disposition(value, ctx),
        "readPoint" | "bizLocation" => location(key, value, ctx),
        "sensorElementList" => sensor_element_list(value, ctx),
        _ => Ok(String::new()),
    }
}

/// The canonical pre-hash string of one EPCIS 2.0 JSON event.
pub fn prehash(event: &Value, ctx: &HashContext) -> Result<String, EpcisError> {
    let obj = as_object(event, "event")?;
    let event_type = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| EpcisError::Hash("event has no \"type\"".into()))?;
    if !obj.contains_key("eventTime") {
        return Err(EpcisError::Hash(format!("{event_type} has no eventTime")));
    }
    let mut out = format!("eventType={event_type}");
    for key in ORDER {
        if let Some(value) = obj.get(*key) {
            out.push_str(&ordered_field(obj, key, value, ctx)?);
        }
    }
    let mut rest = Vec::new();
    for (k, v) in obj {
        if ORDER.contains(&k.as_str())
            || EXCLUDED.contains(&k.as_str())
            || ctx.ignore_fields.iter().any(|f| f == k)
        {
            continue;
        }
        match k.as_str() {
            "bizTransactionList" => rest.push(typed_list(k, "bizTransaction", BTT, v, ctx)?),
            "sourceList" => rest.push(typed_list(k, "source", SDT, v, ctx)?),
            "destinationList" => rest.push(typed_list(k, "destination", SDT, v, ctx)?),
            "ilmd" => {
                let body = extensions(as_object(v, k)?, &[], ctx, k)?;
                if !body.is_empty() {
                    rest.push(format!("ilmd{body}"));
                }
            }
            _ => generic(&ctx.expand_key(k), v, ctx, k, &mut rest)?,
        }
    }
    rest.retain(|p| !p.is_empty());
    rest.sort();
    out.push_str(&rest.concat());
    Ok(out)
}

/// `ni:///sha-256;<hex>?ver=CBV2.0` of a pre-hash string.
pub fn hash_of_prehash(prehash: &str) -> String {
    let digest = Sha256::digest(prehash.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    format!("ni:///sha-256;{hex}?ver=CBV2.0")
}

/// The CBV 2.0 event hash ID of one EPCIS 2.0 JSON event.
pub fn event_hash(event: &Value, ctx: &HashContext) -> Result<String, EpcisError> {
    Ok(hash_of_prehash(&prehash(event, ctx)?))
}

/// The events of an EPCIS document or query document, in order.
pub fn document_events(doc: &Value) -> Result<&[Value], EpcisError> {
    let body = doc
        .get("epcisBody")
        .ok_or_else(|| EpcisError::Hash("document has no epcisBody".into()))?;
    let list = body.get("eventList").or_else(|| {
        body.get("queryResults")
            .and_then(|q| q.get("resultsBody"))
            .and_then(|r| r.get("eventList"))
    });
    list.and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| EpcisError::Hash("document has no eventList".into()))
}

/// Pre-hash string and hash ID of every event of an EPCIS (query) document.
pub fn document_hashes(doc: &Value) -> Result<Vec<(String, String)>, EpcisError> {
    let ctx = HashContext::from_document(doc);
    document_events(doc)?
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let p =
                prehash(e, &ctx).map_err(|err| EpcisError::Hash(format!("event {i}: {err}")))?;
            let h = hash_of_prehash(&p);
            Ok((p, h))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_event_matches_the_reference_string() {
        let ev = json!({
            "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
            "disposition": "in_transit",
            "epcList": ["urn:epc:id:sgtin:0614141.107346.2018", "urn:epc:id:sgtin:0614141.107346.2017"],
            "eventTime": "2022-02-16T20:33:31.116000-06:00", "eventTimeZoneOffset": "-06:00",
            "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234"},
            "bizTransactionList": [{"type": "po", "bizTransaction": "http://transaction.acme.com/po/12345678"}]
        });
        let want = "eventType=ObjectEventeventTime=2022-02-17T02:33:31.116ZeventTimeZoneOffset=-06:00epcListepc=https://id.gs1.org/01/10614141073464/21/2017epc=https://id.gs1.org/01/10614141073464/21/2018action=OBSERVEbizStep=https://ref.gs1.org/cbv/BizStep-shippingdisposition=https://ref.gs1.org/cbv/Disp-in_transitreadPointid=https://id.gs1.org/414/0614141073467/254/1234bizTransactionListtype=https://ref.gs1.org/cbv/BTT-pobizTransaction=http://transaction.acme.com/po/12345678";
        let ctx = HashContext::epcis_default();
        assert_eq!(prehash(&ev, &ctx).ok().as_deref(), Some(want));
        assert_eq!(
            event_hash(&ev, &ctx).ok().as_deref(),
            Some(
                "ni:///sha-256;ffa491b16867e34a7791a8d5389d826afc24e63a121026b6a4004ace38631b4b?ver=CBV2.0"
            )
        );
    }

    #[test]
    fn event_id_record_time_and_error_declaration_do_not_change_the_hash() {
        let base = json!({"type": "ObjectEvent", "eventTime": "2020-01-01T00:00:00Z",
            "eventTimeZoneOffset": "+00:00", "action": "OBSERVE", "epcList": ["urn:epc:id:sgtin:4012345.011111.1"]});
        let mut decorated = base.clone();
        if let Some(o) = decorated.as_object_mut() {
            o.insert("eventID".into(), json!("ni:///sha-256;00?ver=CBV2.0"));
            o.insert("recordTime".into(), json!("2021-01-01T00:00:00Z"));
            o.insert(
                "errorDeclaration".into(),
                json!({"declarationTime": "2021-01-01T00:00:00Z", "reason": "incorrect_data"}),
            );
        }
        let ctx = HashContext::epcis_default();
        assert_eq!(
            event_hash(&base, &ctx).ok(),
            event_hash(&decorated, &ctx).ok()
        );
    }

    #[test]
    fn bad_events_are_errors_naming_the_field() {
        let ctx = HashContext::epcis_default();
        let no_type = json!({"eventTime": "2020-01-01T00:00:00Z"});
        assert!(prehash(&no_type, &ctx).is_err());
        let bad_time = json!({"type": "ObjectEvent", "eventTime": "yesterday"});
        let err = prehash(&bad_time, &ctx)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("eventTime"), "{err}");
        let bad_list =
            json!({"type": "ObjectEvent", "eventTime": "2020-01-01T00:00:00Z", "epcList": "x"});
        let err = prehash(&bad_list, &ctx)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("epcList"), "{err}");
    }
}
