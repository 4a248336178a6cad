//! `ModelInfer` translated to and from the Open Inference Protocol's REST body, which
//! the HTTP front end's logic checks and answers: inputs become JSON entries whose
//! bytes follow the JSON part (binary tensor extension) when they came in
//! `raw_input_contents`, or JSON `data` when they came as typed `contents`; every
//! output is asked for as binary, so the answer's bytes become `raw_output_contents`
//! (as Triton answers).
//!
//! The SLO: the request's `timeout` parameter (µs) and the call's `grpc-timeout`
//! header; when both are given the smaller wins. A deadline past the longest SLO a
//! request may ask for (`--max-slo-ms`) counts as that bound.

use super::messages::{
    InferOutputTensor, InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse,
    ParameterChoice,
};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::Duration;

/// A parameter as JSON.
fn param_json(p: &InferParameter) -> Value {
    match &p.parameter_choice {
        None => Value::Null,
        Some(ParameterChoice::Bool(b)) => json!(b),
        Some(ParameterChoice::Int64(i)) => json!(i),
        Some(ParameterChoice::Str(s)) => json!(s),
        Some(ParameterChoice::Double(d)) => json!(d),
        Some(ParameterChoice::Uint64(u)) => json!(u),
    }
}

fn params_json(ps: &HashMap<String, InferParameter>) -> Map<String, Value> {
    ps.iter().map(|(k, v)| (k.clone(), param_json(v))).collect()
}

/// A JSON parameter as protobuf (`None` for what protobuf cannot carry).
fn param_of(v: &Value) -> Option<InferParameter> {
    let choice = match v {
        Value::Bool(b) => ParameterChoice::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => ParameterChoice::Int64(i),
            (None, Some(u), _) => ParameterChoice::Uint64(u),
            (None, None, Some(d)) => ParameterChoice::Double(d),
            _ => return None,
        },
        Value::String(s) => ParameterChoice::Str(s.clone()),
        _ => return None,
    };
    Some(InferParameter {
        parameter_choice: Some(choice),
    })
}

/// A typed tensor's elements as JSON values: the `contents` field for `datatype`.
fn contents_json(name: &str, datatype: &str, c: &InferTensorContents) -> Result<Value, String> {
    fn all<T: Into<Value> + Copy>(xs: &[T]) -> Value {
        Value::Array(xs.iter().map(|&x| x.into()).collect())
    }
    let (v, field) = match datatype {
        "BOOL" => (all(&c.bool_contents), "bool_contents"),
        "INT8" | "INT16" | "INT32" => (all(&c.int_contents), "int_contents"),
        "INT64" => (all(&c.int64_contents), "int64_contents"),
        "UINT8" | "UINT16" | "UINT32" => (all(&c.uint_contents), "uint_contents"),
        "UINT64" => (all(&c.uint64_contents), "uint64_contents"),
        "FP32" => (
            Value::Array(c.fp32_contents.iter().map(|&x| json!(x)).collect()),
            "fp32_contents",
        ),
        "FP64" => (all(&c.fp64_contents), "fp64_contents"),
        "BYTES" => {
            let strings: Result<Vec<Value>, String> = c
                .bytes_contents
                .iter()
                .map(|b| {
                    String::from_utf8(b.clone())
                        .map(Value::String)
                        .map_err(|_| format!("input `{name}`: BYTES contents must be UTF-8"))
                })
                .collect();
            (Value::Array(strings?), "bytes_contents")
        }
        other => {
            return Err(format!(
                "input `{name}`: {other} has no typed contents field; send it in raw_input_contents"
            ))
        }
    };
    let given = [
        !c.bool_contents.is_empty(),
        !c.int_contents.is_empty(),
        !c.int64_contents.is_empty(),
        !c.uint_contents.is_empty(),
        !c.uint64_contents.is_empty(),
        !c.fp32_contents.is_empty(),
        !c.fp64_contents.is_empty(),
        !c.bytes_contents.is_empty(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    let used = usize::from(v.as_array().is_some_and(|a| !a.is_empty()));
    if given > used {
        return Err(format!(
            "input `{name}`: {datatype} contents go in {field} (other contents fields are set)"
        ));
    }
    Ok(v)
}

/// The REST body for `req`: its JSON part and the binary bytes after it, joined, and
/// the JSON part's length. `deadline` is the call's `grpc-timeout`, `max_slo` the
/// longest SLO allowed.
pub(super) fn rest_body(
    req: &ModelInferRequest,
    deadline: Option<Duration>,
    max_slo: Duration,
) -> Result<(Vec<u8>, usize), String> {
    let raw = !req.raw_input_contents.is_empty();
    if raw && req.raw_input_contents.len() != req.inputs.len() {
        return Err(format!(
            "raw_input_contents has {} entries for {} inputs: give every input's bytes there, \
             in the inputs' order, or none",
            req.raw_input_contents.len(),
            req.inputs.len()
        ));
    }
    let mut inputs = Vec::with_capacity(req.inputs.len());
    // The raw bytes go into the body once, after its JSON part.
    let mut tail: Vec<&[u8]> = Vec::new();
    for (i, inp) in req.inputs.iter().enumerate() {
        let mut params = params_json(&inp.parameters);
        let mut entry = json!({
            "name": inp.name,
            "datatype": inp.datatype,
            "shape": inp.shape,
        });
        if raw {
            if inp.contents.is_some() {
                return Err(format!(
                    "input `{}`: both contents and raw_input_contents given",
                    inp.name
                ));
            }
            let bytes = &req.raw_input_contents[i];
            params.insert("binary_data_size".into(), json!(bytes.len()));
            tail.push(bytes);
        } else {
            params.remove("binary_data_size");
            let c = inp.contents.clone().unwrap_or_default();
            entry["data"] = contents_json(&inp.name, &inp.datatype, &c)?;
        }
        entry["parameters"] = Value::Object(params);
        inputs.push(entry);
    }
    let outputs: Vec<Value> = req
        .outputs
        .iter()
        .map(|o| {
            let mut params = params_json(&o.parameters);
            params.insert("binary_data".into(), json!(true));
            json!({ "name": o.name, "parameters": params })
        })
        .collect();
    let mut params = params_json(&req.parameters);
    params.insert("binary_data_output".into(), json!(true));
    if let Some(d) = deadline {
        let us = u64::try_from(d.min(max_slo).as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let given = params
            .get("timeout")
            .and_then(Value::as_u64)
            .filter(|&t| t > 0);
        let other_slo =
            params.contains_key("clockwork_slo_ms") || params.contains_key("clockwork_slo_factor");
        if !other_slo {
            params.insert("timeout".into(), json!(given.map_or(us, |t| t.min(us))));
        }
    }
    let mut head = json!({
        "parameters": params,
        "inputs": inputs,
        "outputs": outputs,
    });
    if !req.id.is_empty() {
        head["id"] = json!(req.id);
    }
    let mut body = serde_json::to_vec(&head).map_err(|e| format!("internal: {e}"))?;
    let header_len = body.len();
    body.reserve_exact(tail.iter().map(|t| t.len()).sum());
    for t in tail {
        body.extend_from_slice(t);
    }
    Ok((body, header_len))
}

/// The `ModelInferResponse` for the REST answer `json` with its binary bytes `tail`.
pub(super) fn response(json: &Value, tail: &[u8]) -> Result<ModelInferResponse, String> {
    let text = |k: &str| json.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let parameters = json
        .get("parameters")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), param_of(v)?)))
                .collect()
        })
        .unwrap_or_default();
    let mut outputs = Vec::new();
    let mut raw = Vec::new();
    let mut at = 0usize;
    let entries = json.get("outputs").and_then(Value::as_array);
    for o in entries.into_iter().flatten() {
        let n = o
            .pointer("/parameters/binary_data_size")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or("internal: an output without binary data")?;
        let bytes = tail
            .get(at..at.saturating_add(n))
            .ok_or("internal: the outputs' bytes are short")?;
        at += n;
        raw.push(bytes.to_vec());
        outputs.push(InferOutputTensor {
            name: o.get("name").and_then(Value::as_str).unwrap_or("").into(),
            datatype: o
                .get("datatype")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            shape: o
                .get("shape")
                .and_then(Value::as_array)
                .map(|s| s.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default(),
            ..Default::default()
        });
    }
    Ok(ModelInferResponse {
        model_name: text("model_name"),
        model_version: text("model_version"),
        id: text("id"),
        parameters,
        outputs,
        raw_output_contents: raw,
    })
}

#[cfg(test)]
mod tests {
    use super::super::messages::InferInputTensor;
    use super::*;

    fn input(name: &str, datatype: &str, shape: &[i64]) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
            ..Default::default()
        }
    }

    const MAX: Duration = Duration::from_secs(60);

    fn split(body: &[u8], n: usize) -> (Value, &[u8]) {
        (serde_json::from_slice(&body[..n]).unwrap(), &body[n..])
    }

    #[test]
    fn raw_inputs_follow_the_json_part() {
        let req = ModelInferRequest {
            id: "a".into(),
            inputs: vec![input("x", "FP32", &[1, 1]), input("y", "UINT8", &[1, 2])],
            raw_input_contents: vec![1.5f32.to_le_bytes().to_vec().into(), vec![7, 8].into()],
            ..Default::default()
        };
        let (body, n) = rest_body(&req, None, MAX).unwrap();
        let (head, tail) = split(&body, n);
        assert_eq!(tail, [0, 0, 0xc0, 0x3f, 7, 8]);
        assert_eq!(head["id"], "a");
        assert_eq!(head["inputs"][0]["parameters"]["binary_data_size"], 4);
        assert_eq!(head["inputs"][1]["parameters"]["binary_data_size"], 2);
        assert_eq!(head["parameters"]["binary_data_output"], true);
        assert!(head["parameters"].get("timeout").is_none());
        // Raw bytes for some inputs only.
        let mut bad = req;
        bad.raw_input_contents.pop();
        assert!(rest_body(&bad, None, MAX).is_err());
    }

    #[test]
    fn typed_contents_become_json_data() {
        let mut x = input("x", "FP32", &[1, 2]);
        x.contents = Some(InferTensorContents {
            fp32_contents: vec![0.5, -1.0],
            ..Default::default()
        });
        let mut req = ModelInferRequest {
            inputs: vec![x],
            ..Default::default()
        };
        let (body, n) = rest_body(&req, None, MAX).unwrap();
        let (head, tail) = split(&body, n);
        assert!(tail.is_empty());
        assert_eq!(head["inputs"][0]["data"], json!([0.5, -1.0]));
        // FP32 values in the wrong field.
        req.inputs[0].contents = Some(InferTensorContents {
            int_contents: vec![1, 2],
            ..Default::default()
        });
        let e = rest_body(&req, None, MAX).unwrap_err();
        assert!(e.contains("fp32_contents"), "{e}");
    }

    #[test]
    fn the_smaller_timeout_wins() {
        let mut req = ModelInferRequest::default();
        let timeout = |req: &ModelInferRequest, d| {
            let (body, n) = rest_body(req, d, MAX).unwrap();
            split(&body, n).0["parameters"].get("timeout").cloned()
        };
        assert_eq!(
            timeout(&req, Some(Duration::from_millis(20))),
            Some(json!(20_000))
        );
        req.parameters.insert(
            "timeout".into(),
            InferParameter {
                parameter_choice: Some(ParameterChoice::Int64(5_000)),
            },
        );
        assert_eq!(
            timeout(&req, Some(Duration::from_millis(20))),
            Some(json!(5_000))
        );
        assert_eq!(
            timeout(&req, Some(Duration::from_millis(1))),
            Some(json!(1_000))
        );
        assert_eq!(timeout(&req, None), Some(json!(5_000)));
        // A deadline past the bound counts as the bound.
        req.parameters.clear();
        assert_eq!(
            timeout(&req, Some(Duration::from_secs(61))),
            Some(json!(60_000_000))
        );
    }

    #[test]
    fn binary_outputs_become_raw_output_contents() {
        let answer = json!({
            "model_name": "m", "model_version": "1", "id": "7",
            "parameters": { "clockwork_batch_size": 2 },
            "outputs": [
                { "name": "a", "datatype": "UINT8", "shape": [1, 2],
                  "parameters": { "binary_data_size": 2 } },
                { "name": "b", "datatype": "UINT8", "shape": [1, 1],
                  "parameters": { "binary_data_size": 1 } },
            ],
        });
        let r = response(&answer, &[1, 2, 3]).unwrap();
        assert_eq!(r.raw_output_contents, [vec![1, 2], vec![3]]);
        assert_eq!(r.outputs[1].shape, [1, 1]);
        assert_eq!((r.model_name.as_str(), r.id.as_str()), ("m", "7"));
        assert_eq!(
            r.parameters["clockwork_batch_size"].parameter_choice,
            Some(ParameterChoice::Int64(2))
        );
        assert!(response(&answer, &[1, 2]).is_err());
    }
}
