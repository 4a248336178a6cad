//! The Open Inference Protocol (KServe v2) bodies: inference requests (JSON and the
//! binary tensor extension), SLO parameters, inference responses, model names, and
//! model profiles given as JSON.

use super::answer::{AnswerBody, AnswerParameters, OutputEntry};
use super::bounds::MAX_COPIES;
use bytes::Bytes;
use clockwork_core::{BatchProfile, InputBytes, ModelId, ModelProfile, Nanos, Slo};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The one input and the one output every model has (profiles know bytes only).
pub(super) const INPUT_NAME: &str = "input";
/// See [`INPUT_NAME`].
pub(super) const OUTPUT_NAME: &str = "output";

/// An inference request, decoded.
#[derive(Debug)]
pub(super) struct InferBody {
    /// The client's id, echoed.
    pub(super) id: Option<String>,
    pub(super) slo: Slo,
    /// Input bytes (all inputs concatenated); empty lets the worker make an input.
    /// Binary tensors are slices of the request body, not copies.
    pub(super) input: InputBytes,
    /// Return the output through the binary tensor extension.
    pub(super) binary_output: bool,
}

/// An inference request's JSON part, as sent.
#[derive(Deserialize)]
pub(super) struct RawInfer {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    pub(super) parameters: Map<String, Value>,
    pub(super) inputs: Vec<RawInput>,
    #[serde(default)]
    pub(super) outputs: Vec<RawOutput>,
}

/// One input of a request, as sent.
#[derive(Deserialize)]
pub(super) struct RawInput {
    pub(super) name: String,
    pub(super) shape: Vec<i64>,
    pub(super) datatype: String,
    #[serde(default)]
    pub(super) parameters: Map<String, Value>,
    #[serde(default)]
    pub(super) data: Option<Value>,
}

/// One requested output, as sent.
#[derive(Deserialize)]
pub(super) struct RawOutput {
    pub(super) name: String,
    #[serde(default)]
    pub(super) parameters: Map<String, Value>,
}

/// An inference request's JSON part decoded, with its id, its SLO, and the binary
/// bytes after the JSON header (empty without the binary tensor extension).
pub(super) struct RequestHead<'a> {
    pub(super) raw: RawInfer,
    pub(super) id: Option<String>,
    pub(super) slo: Slo,
    pub(super) binary: &'a [u8],
}

/// Splits a body at `header_len` (the `Inference-Header-Content-Length`) and decodes
/// the JSON part, its id and its SLO parameters.
pub(super) fn parse_head(
    body: &[u8],
    header_len: Option<usize>,
) -> Result<RequestHead<'_>, String> {
    let (json_part, binary) = match header_len {
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(format!(
                "Inference-Header-Content-Length {n} exceeds the body length {}",
                body.len()
            ))
        }
        None => (body, &[][..]),
    };
    let raw: RawInfer =
        serde_json::from_slice(json_part).map_err(|e| format!("malformed JSON: {e}"))?;
    let id = match &raw.id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(format!("id must be a string, got {other}")),
    };
    let slo = slo_from(&raw.parameters)?;
    Ok(RequestHead {
        raw,
        id,
        slo,
        binary,
    })
}

/// Bytes per element, `None` for `BYTES` (variable).
fn elem_size(datatype: &str) -> Result<Option<usize>, String> {
    Ok(Some(match datatype {
        "BOOL" | "UINT8" | "INT8" => 1,
        "UINT16" | "INT16" | "FP16" | "BF16" => 2,
        "UINT32" | "INT32" | "FP32" => 4,
        "UINT64" | "INT64" | "FP64" => 8,
        "BYTES" => return Ok(None),
        other => return Err(format!("unknown datatype {other}")),
    }))
}

/// The leaves of a (nested) JSON array, in row-major order.
pub(super) fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        x => out.push(x),
    }
}

/// Appends `v` as one little-endian element of `datatype`.
pub(super) fn encode_elem(datatype: &str, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let bad = || format!("value {v} is not a valid {datatype}");
    macro_rules! int {
        ($t:ty, $get:ident) => {{
            let x = v.$get().ok_or_else(bad)?;
            let x = <$t>::try_from(x).map_err(|_| bad())?;
            out.extend_from_slice(&x.to_le_bytes());
        }};
    }
    match datatype {
        "BOOL" => {
            let b = match v {
                Value::Bool(b) => *b,
                Value::Number(n) if n.as_u64() == Some(0) => false,
                Value::Number(n) if n.as_u64() == Some(1) => true,
                _ => return Err(bad()),
            };
            out.push(u8::from(b));
        }
        "UINT8" => int!(u8, as_u64),
        "UINT16" => int!(u16, as_u64),
        "UINT32" => int!(u32, as_u64),
        "UINT64" => int!(u64, as_u64),
        "INT8" => int!(i8, as_i64),
        "INT16" => int!(i16, as_i64),
        "INT32" => int!(i32, as_i64),
        "INT64" => int!(i64, as_i64),
        "FP32" => {
            let x = v.as_f64().ok_or_else(bad)? as f32;
            out.extend_from_slice(&x.to_le_bytes());
        }
        "FP64" => {
            let x = v.as_f64().ok_or_else(bad)?;
            out.extend_from_slice(&x.to_le_bytes());
        }
        "FP16" => {
            let x = half::f16::from_f64(v.as_f64().ok_or_else(bad)?);
            out.extend_from_slice(&x.to_le_bytes());
        }
        "BYTES" => {
            let s = v.as_str().ok_or_else(bad)?;
            let n = u32::try_from(s.len()).map_err(|_| bad())?;
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        _ => {
            return Err(format!(
                "{datatype} data cannot be sent as JSON; use the binary tensor extension"
            ))
        }
    }
    Ok(())
}

/// The SLO from request parameters: `timeout` (integer µs, Triton's name; 0 = the
/// default), `clockwork_slo_ms` (number) or `clockwork_slo_factor` (number, a multiple
/// of the model's batch-1 estimate). At most one may be given.
pub(super) fn slo_from(params: &Map<String, Value>) -> Result<Slo, String> {
    let keys = ["timeout", "clockwork_slo_ms", "clockwork_slo_factor"];
    let given: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| params.contains_key(*k))
        .collect();
    if given.len() > 1 {
        return Err(format!(
            "give at most one of the SLO parameters timeout, clockwork_slo_ms, clockwork_slo_factor (got {})",
            given.join(", ")
        ));
    }
    let positive = |k: &str, v: &Value| -> Result<f64, String> {
        v.as_f64()
            .filter(|x| x.is_finite() && *x > 0.0 && *x < 3.6e12)
            .ok_or_else(|| format!("parameter {k} must be a positive number, got {v}"))
    };
    match given.first().copied() {
        None => Ok(Slo::Default),
        Some("timeout") => {
            let v = &params["timeout"];
            match v.as_u64() {
                Some(0) => Ok(Slo::Default),
                Some(us) if us < 3_600_000_000 => Ok(Slo::Absolute(Nanos::from_micros(us))),
                _ => Err(format!(
                    "parameter timeout must be an integer number of microseconds below one hour, got {v}"
                )),
            }
        }
        Some("clockwork_slo_ms") => {
            let ms = positive("clockwork_slo_ms", &params["clockwork_slo_ms"])?;
            if ms >= 3_600_000.0 {
                return Err("parameter clockwork_slo_ms must be below one hour".into());
            }
            Ok(Slo::Absolute(Nanos((ms * 1e6).round() as u64)))
        }
        Some(_) => {
            let f = positive("clockwork_slo_factor", &params["clockwork_slo_factor"])?;
            Ok(Slo::Factor(f as f32))
        }
    }
}

/// Whether a parameter is `true`.
pub(super) fn truthy(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true)))
}

/// Decodes an inference request body. `header_len` is the
/// `Inference-Header-Content-Length` (binary tensor extension). Whether the input's
/// size suits the model is checked where native requests are checked too: by the
/// scheduler, on the service's one request path.
pub(super) fn parse_infer(body: &Bytes, header_len: Option<usize>) -> Result<InferBody, String> {
    let RequestHead {
        raw,
        id,
        slo,
        mut binary,
    } = parse_head(body, header_len)?;
    let mut input = InputBytes::new();
    for inp in &raw.inputs {
        let elems = inp.shape.iter().try_fold(1usize, |acc, &d| {
            usize::try_from(d)
                .ok()
                .and_then(|d| acc.checked_mul(d))
                .ok_or_else(|| format!("input {}: invalid shape {:?}", inp.name, inp.shape))
        })?;
        let size = elem_size(&inp.datatype).map_err(|e| format!("input {}: {e}", inp.name))?;
        if let Some(n) = inp.parameters.get("binary_data_size") {
            let n = n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("input {}: invalid binary_data_size", inp.name))?;
            if n > binary.len() {
                return Err(format!(
                    "input {}: binary_data_size {n} exceeds the {} binary bytes left",
                    inp.name,
                    binary.len()
                ));
            }
            if let Some(s) = size {
                if elems.checked_mul(s) != Some(n) {
                    return Err(format!(
                        "input {}: {n} binary bytes do not match shape {:?} of {}",
                        inp.name, inp.shape, inp.datatype
                    ));
                }
            }
            let (data, rest) = binary.split_at(n);
            input.push(body.slice_ref(data));
            binary = rest;
            if inp.data.is_some() {
                return Err(format!(
                    "input {}: both data and binary_data_size given",
                    inp.name
                ));
            }
        } else {
            let data = inp
                .data
                .as_ref()
                .ok_or_else(|| format!("input {}: no data", inp.name))?;
            let mut flat = Vec::new();
            flatten(data, &mut flat);
            if flat.len() != elems {
                return Err(format!(
                    "input {}: {} values do not match shape {:?}",
                    inp.name,
                    flat.len(),
                    inp.shape
                ));
            }
            let mut encoded = Vec::with_capacity(elems * size.unwrap_or(8));
            for v in flat {
                encode_elem(&inp.datatype, v, &mut encoded)
                    .map_err(|e| format!("input {}: {e}", inp.name))?;
            }
            input.push(encoded.into());
        }
    }
    if !binary.is_empty() {
        return Err(format!(
            "{} binary bytes after the JSON header belong to no input",
            binary.len()
        ));
    }
    let mut binary_output = truthy(raw.parameters.get("binary_data_output"));
    for o in &raw.outputs {
        if o.name != OUTPUT_NAME {
            return Err(format!(
                "unknown output {}; the model has one output named {OUTPUT_NAME}",
                o.name
            ));
        }
        binary_output |= truthy(o.parameters.get("binary_data"));
    }
    Ok(InferBody {
        id,
        slo,
        input,
        binary_output,
    })
}

/// What a successful inference answers: the JSON part and the binary tail (empty
/// unless the output goes through the binary tensor extension).
pub(super) struct InferAnswer<'a> {
    pub(super) model_name: &'a str,
    pub(super) id: Option<&'a str>,
    pub(super) batch_size: u32,
    pub(super) controller_latency: Nanos,
    pub(super) output: &'a [u8],
    /// An emulated GPU ran it: the output is zeros or empty, not a model's.
    pub(super) emulated: bool,
    pub(super) binary: bool,
}

impl<'a> InferAnswer<'a> {
    /// The JSON body around `outputs`: model name and version, the request's id, and
    /// Clockwork's parameters (batch size, controller latency, emulated).
    pub(super) fn envelope(&self, outputs: Vec<OutputEntry<'a>>) -> AnswerBody<'a> {
        AnswerBody {
            id: self.id,
            model_name: self.model_name,
            model_version: "1",
            outputs,
            parameters: AnswerParameters {
                clockwork_batch_size: self.batch_size,
                clockwork_controller_latency_us: self.controller_latency.get() / 1_000,
                clockwork_emulated: self.emulated,
            },
        }
    }

    /// The JSON body and the binary tail of a model without a tensor signature: one
    /// opaque `UINT8` output.
    pub(super) fn encode(&self) -> (AnswerBody<'a>, Vec<u8>) {
        let shape = vec![self.output.len() as i64];
        if self.binary {
            let out = OutputEntry::binary(OUTPUT_NAME, "UINT8", shape, self.output.len());
            (self.envelope(vec![out]), self.output.to_vec())
        } else {
            let out = OutputEntry::uint8(OUTPUT_NAME, shape, self.output);
            (self.envelope(vec![out]), Vec::new())
        }
    }
}

/// The name of a model instance: `<network>-<id>`, e.g. `resnet50_v2-0`.
pub(super) fn instance_name(network: &str, id: ModelId) -> String {
    format!("{network}-{}", id.0)
}

/// Splits an instance name into its network (absent for a bare numeric id) and id.
pub(super) fn parse_instance(name: &str) -> Option<(Option<&str>, u32)> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(name) {
        return name.parse().ok().map(|id| (None, id));
    }
    let (net, id) = name.rsplit_once('-')?;
    if net.is_empty() || !digits(id) {
        return None;
    }
    id.parse().ok().map(|id| (Some(net), id))
}

/// Whether `name` may name a network loaded through the repository API: 1 to 128 of
/// `[A-Za-z0-9_.-]`, not all digits, and not ending in `-<digits>` (so that instance
/// names stay unambiguous).
pub(super) fn valid_network(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        && parse_instance(name).is_none()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileJson {
    #[serde(default)]
    name: Option<String>,
    weights_bytes: u64,
    input_bytes: u32,
    output_bytes: u32,
    load_time_us: u64,
    batches: Vec<BatchJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchJson {
    batch_size: u32,
    exec_time_us: u64,
}

/// A profile as JSON, the way the model metadata shows it.
pub(super) fn profile_json(p: &ModelProfile) -> Value {
    json!({
        "name": p.name,
        "weights_bytes": p.weights_bytes,
        "input_bytes": p.input_bytes,
        "output_bytes": p.output_bytes,
        "load_time_us": p.load_time.get() / 1_000,
        "batches": p.batches.iter().map(|b| json!({
            "batch_size": b.batch_size,
            "exec_time_us": b.exec_time.get() / 1_000,
        })).collect::<Vec<_>>(),
    })
}

/// What a repository load asks for.
#[derive(Debug)]
pub(super) struct LoadRequest {
    /// The profile, if one was given (`None`: the built-in one named by the URL).
    pub(super) profile: Option<ModelProfile>,
    pub(super) copies: u32,
}

/// Decodes a repository load body: `{"parameters": {"profile": <built-in name, or a
/// profile object, or that object as a JSON string>, "copies": n}}`; empty is allowed.
pub(super) fn parse_load(body: &[u8]) -> Result<LoadRequest, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(LoadRequest {
            profile: None,
            copies: 1,
        });
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let params = match v.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return Err(format!("parameters must be an object, got {other}")),
    };
    let copies = match params.get("copies") {
        None => 1,
        Some(c) => c
            .as_u64()
            .filter(|&c| (1..=MAX_COPIES).contains(&c))
            .ok_or_else(|| format!("copies must be an integer in 1..={MAX_COPIES}, got {c}"))?,
    };
    let profile = match params.get("profile") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim_start().starts_with('{') => {
            let v: Value =
                serde_json::from_str(s).map_err(|e| format!("malformed profile JSON: {e}"))?;
            Some(profile_from_json(v)?)
        }
        Some(Value::String(s)) => Some(
            clockwork_core::model::builtin_profiles()
                .into_iter()
                .find(|p| p.name == *s)
                .ok_or_else(|| format!("no built-in profile named {s}"))?,
        ),
        Some(v @ Value::Object(_)) => Some(profile_from_json(v.clone())?),
        Some(other) => return Err(format!("profile must be a name or an object, got {other}")),
    };
    Ok(LoadRequest {
        profile,
        copies: u32::try_from(copies).unwrap_or(1),
    })
}

fn profile_from_json(v: Value) -> Result<ModelProfile, String> {
    let p: ProfileJson = serde_json::from_value(v).map_err(|e| format!("bad profile: {e}"))?;
    let profile = ModelProfile {
        name: p.name.unwrap_or_default(),
        weights_bytes: p.weights_bytes,
        input_bytes: p.input_bytes,
        output_bytes: p.output_bytes,
        load_time: Nanos::from_micros(p.load_time_us),
        batches: p
            .batches
            .iter()
            .map(|b| BatchProfile {
                batch_size: b.batch_size,
                exec_time: Nanos::from_micros(b.exec_time_us),
            })
            .collect(),
        source: clockwork_core::ModelSource::Emulated,
        inputs: Vec::new(),
        outputs: Vec::new(),
    };
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_infer_of(body: &[u8], header_len: Option<usize>) -> Result<InferBody, String> {
        parse_infer(&Bytes::copy_from_slice(body), header_len)
    }

    #[test]
    fn instance_names_round_trip() {
        assert_eq!(instance_name("resnet50_v2", ModelId(12)), "resnet50_v2-12");
        assert_eq!(
            parse_instance("resnet50_v2-12"),
            Some((Some("resnet50_v2"), 12))
        );
        assert_eq!(parse_instance("my-net-3"), Some((Some("my-net"), 3)));
        assert_eq!(parse_instance("7"), Some((None, 7)));
        assert_eq!(parse_instance("resnet50_v2"), None);
        assert_eq!(parse_instance("-3"), None);
        assert!(valid_network("resnet50_v2"));
        assert!(valid_network("my-net"));
        assert!(!valid_network("net-3"));
        assert!(!valid_network("42"));
        assert!(!valid_network("a b"));
    }

    /// FP16 JSON numbers become the nearest half (ties to even, too large: infinity);
    /// what is not a number is refused.
    #[test]
    fn fp16_json_numbers_are_encoded_as_nearest_halves() {
        let enc = |v: Value| {
            let mut out = Vec::new();
            encode_elem("FP16", &v, &mut out).map(|()| u16::from_le_bytes([out[0], out[1]]))
        };
        assert_eq!(enc(json!(1.0)), Ok(0x3c00));
        assert_eq!(enc(json!(-2)), Ok(0xc000));
        assert_eq!(enc(json!(65504.0)), Ok(0x7bff));
        assert_eq!(enc(json!(1e6)), Ok(0x7c00));
        assert_eq!(enc(json!(1.0 + 1.0 / 2048.0)), Ok(0x3c00));
        assert_eq!(enc(json!(1.0 + 3.0 / 2048.0)), Ok(0x3c02));
        assert!(enc(json!("one")).is_err());
    }

    #[test]
    fn slo_parameters() {
        let p = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(slo_from(&p(json!({}))), Ok(Slo::Default));
        assert_eq!(
            slo_from(&p(json!({"timeout": 25000}))),
            Ok(Slo::Absolute(Nanos::from_millis(25)))
        );
        assert_eq!(slo_from(&p(json!({"timeout": 0}))), Ok(Slo::Default));
        assert_eq!(
            slo_from(&p(json!({"clockwork_slo_ms": 7.5}))),
            Ok(Slo::Absolute(Nanos::from_micros(7_500)))
        );
        assert_eq!(
            slo_from(&p(json!({"clockwork_slo_factor": 4}))),
            Ok(Slo::Factor(4.0))
        );
        assert!(slo_from(&p(json!({"timeout": -1}))).is_err());
        assert!(slo_from(&p(json!({"timeout": 1.5}))).is_err());
        assert!(slo_from(&p(json!({"clockwork_slo_ms": 0}))).is_err());
        assert!(slo_from(&p(json!({"timeout": 1, "clockwork_slo_ms": 1}))).is_err());
    }

    #[test]
    fn json_and_binary_inputs_encode_little_endian() {
        let b = br#"{"id":"a","inputs":[{"name":"x","shape":[2,2],"datatype":"INT16","data":[[1,-1],[256,0]]}]}"#;
        let r = parse_infer_of(b, None).unwrap();
        assert_eq!(r.id.as_deref(), Some("a"));
        assert_eq!(r.input.to_vec(), [1, 0, 255, 255, 0, 1, 0, 0]);
        // Values that do not match the shape.
        let b = br#"{"inputs":[{"name":"x","shape":[3],"datatype":"UINT8","data":[1,2]}]}"#;
        assert!(parse_infer_of(b, None).is_err());
        // Out of range.
        let b = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"UINT8","data":[256]}]}"#;
        assert!(parse_infer_of(b, None).is_err());
        // Binary tensor extension, binary output requested.
        let mut body = br#"{"inputs":[{"name":"x","shape":[3],"datatype":"UINT8","parameters":{"binary_data_size":3}}],"outputs":[{"name":"output","parameters":{"binary_data":true}}]}"#.to_vec();
        let n = body.len();
        body.extend_from_slice(&[9, 8, 7]);
        let r = parse_infer_of(&body, Some(n)).unwrap();
        assert_eq!(r.input.to_vec(), [9, 8, 7]);
        assert!(r.binary_output);
        // Leftover binary bytes, or a header length past the end.
        body.push(0);
        assert!(parse_infer_of(&body, Some(n)).is_err());
        assert!(parse_infer_of(&body, Some(body.len() + 1)).is_err());
        // No inputs: the worker generates one.
        let r = parse_infer_of(br#"{"inputs":[]}"#, None).unwrap();
        assert!(r.input.is_empty());
        assert!(parse_infer_of(br#"{"inputs":[}"#, None).is_err());
    }

    #[test]
    fn load_bodies() {
        let r = parse_load(b"").unwrap();
        assert!(r.profile.is_none() && r.copies == 1);
        let r = parse_load(br#"{"parameters":{"profile":"resnet18_v2","copies":3}}"#).unwrap();
        assert_eq!(r.profile.unwrap().name, "resnet18_v2");
        assert_eq!(r.copies, 3);
        let r = parse_load(
            br#"{"parameters":{"profile":{"weights_bytes":1000,"input_bytes":4,"output_bytes":4,"load_time_us":100,"batches":[{"batch_size":1,"exec_time_us":50}]}}}"#,
        )
        .unwrap();
        assert_eq!(
            r.profile.unwrap().batches[0].exec_time,
            Nanos::from_micros(50)
        );
        assert!(parse_load(br#"{"parameters":{"copies":0}}"#).is_err());
        assert!(parse_load(br#"{"parameters":{"profile":"nope"}}"#).is_err());
        assert!(parse_load(br#"{"parameters":{"profile":{"bogus":1}}}"#).is_err());
    }
}
