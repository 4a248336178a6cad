//! Real models' tensors over HTTP: an inference request checked against the model's
//! tensor signature (names, datatypes, shapes, byte counts) and packed into one
//! request's input in the model's input order; the answer's output split per output
//! tensor and rendered in its datatype (JSON numbers or the binary tensor extension).
//!
//! Every check happens before the request is queued, so a bad request changes nothing
//! in the scheduler. A request carries exactly one item along the batch axis.

use super::answer::OutputEntry;
use super::oip::{self, RawInput};
use bytes::Bytes;
use clockwork_core::{InputBytes, Slo, TensorSpec};
use serde_json::{json, Value};

/// An inference request for a real model, checked and packed.
#[derive(Debug)]
pub(super) struct TypedInfer {
    /// The client's id, echoed.
    pub(super) id: Option<String>,
    pub(super) slo: Slo,
    /// One item of every input, concatenated in the model's input order.
    pub(super) input: InputBytes,
    /// The outputs to answer, in the order asked.
    pub(super) outputs: Vec<OutputChoice>,
}

/// One output to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OutputChoice {
    /// Index into the model's outputs.
    pub(super) index: usize,
    /// Answer it through the binary tensor extension.
    pub(super) binary: bool,
}

fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// The shape of one request's item: the batch axis is 1.
fn item_shape(t: &TensorSpec) -> Vec<i64> {
    std::iter::once(1)
        .chain(t.shape.iter().skip(1).copied())
        .collect()
}

fn describe(t: &TensorSpec) -> String {
    format!(
        "`{}` ({} {})",
        t.name,
        t.datatype,
        shape_text(&item_shape(t))
    )
}

fn list(ts: &[TensorSpec]) -> String {
    ts.iter().map(describe).collect::<Vec<_>>().join(", ")
}

fn elem_bytes(datatype: &str) -> usize {
    match datatype {
        "UINT8" | "INT8" | "BOOL" => 1,
        "UINT16" | "INT16" | "FP16" | "BF16" => 2,
        "UINT32" | "INT32" | "FP32" => 4,
        _ => 8,
    }
}

fn check_shape(inp: &RawInput, spec: &TensorSpec) -> Result<(), String> {
    let want = item_shape(spec);
    if inp.shape == want {
        return Ok(());
    }
    if inp.shape.len() == want.len() && inp.shape[1..] == want[1..] && inp.shape[0] > 1 {
        return Err(format!(
            "input `{}`: shape {} carries {} items along the batch axis; a request carries \
             exactly one (shape {}): send one request per item",
            inp.name,
            shape_text(&inp.shape),
            inp.shape[0],
            shape_text(&want)
        ));
    }
    Err(format!(
        "input `{}`: shape {}, expected {}",
        inp.name,
        shape_text(&inp.shape),
        shape_text(&want)
    ))
}

/// Decodes an inference request for a model with these `inputs` and `outputs`.
/// `header_len` is the `Inference-Header-Content-Length` (binary tensor extension).
/// Errors name what was expected.
pub(super) fn parse_typed(
    body: &Bytes,
    header_len: Option<usize>,
    inputs: &[TensorSpec],
    outputs: &[TensorSpec],
) -> Result<TypedInfer, String> {
    let head = oip::parse_head(body, header_len)?;
    let mut binary = head.binary;
    let mut slots: Vec<Option<Bytes>> = vec![None; inputs.len()];
    for inp in &head.raw.inputs {
        let Some(i) = inputs.iter().position(|t| t.name == inp.name) else {
            return Err(format!(
                "unknown input `{}`; the model's inputs are {}",
                inp.name,
                list(inputs)
            ));
        };
        let spec = &inputs[i];
        if slots[i].is_some() {
            return Err(format!("input `{}` is given twice", inp.name));
        }
        if inp.datatype != spec.datatype {
            return Err(format!(
                "input `{}`: datatype {}, expected {}",
                inp.name, inp.datatype, spec.datatype
            ));
        }
        check_shape(inp, spec)?;
        let want = spec.item_bytes as usize;
        let bytes = if let Some(n) = inp.parameters.get("binary_data_size") {
            if inp.data.is_some() {
                return Err(format!(
                    "input `{}`: both data and binary_data_size given",
                    inp.name
                ));
            }
            let n = n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("input `{}`: invalid binary_data_size {n}", inp.name))?;
            if n != want {
                return Err(format!(
                    "input `{}`: binary_data_size {n}, expected {want} bytes for {}",
                    inp.name,
                    describe(spec)
                ));
            }
            if n > binary.len() {
                return Err(format!(
                    "input `{}`: binary_data_size {n} exceeds the {} binary bytes left",
                    inp.name,
                    binary.len()
                ));
            }
            let (data, rest) = binary.split_at(n);
            binary = rest;
            // A slice of the body: its bytes are not copied.
            body.slice_ref(data)
        } else {
            let data = inp.data.as_ref().ok_or_else(|| {
                format!(
                    "input `{}`: no data (give data or parameters.binary_data_size)",
                    inp.name
                )
            })?;
            let mut flat = Vec::new();
            oip::flatten(data, &mut flat);
            let elems = want / elem_bytes(&spec.datatype);
            if flat.len() != elems {
                return Err(format!(
                    "input `{}`: {} values, expected {elems} for {}",
                    inp.name,
                    flat.len(),
                    describe(spec)
                ));
            }
            let mut out = Vec::with_capacity(want);
            for v in flat {
                oip::encode_elem(&spec.datatype, v, &mut out)
                    .map_err(|e| format!("input `{}`: {e}", inp.name))?;
            }
            Bytes::from(out)
        };
        slots[i] = Some(bytes);
    }
    if !binary.is_empty() {
        return Err(format!(
            "{} binary bytes after the JSON header belong to no input",
            binary.len()
        ));
    }
    if let Some((_, spec)) = slots.iter().zip(inputs).find(|(s, _)| s.is_none()) {
        return Err(format!("missing input {}", describe(spec)));
    }
    // The inputs in the model's order, as segments: nothing is concatenated.
    let mut input = InputBytes::new();
    for b in slots.into_iter().flatten() {
        input.push(b);
    }
    let all_binary = oip::truthy(head.raw.parameters.get("binary_data_output"));
    let choices = if head.raw.outputs.is_empty() {
        (0..outputs.len())
            .map(|index| OutputChoice {
                index,
                binary: all_binary,
            })
            .collect()
    } else {
        let mut choices: Vec<OutputChoice> = Vec::new();
        for o in &head.raw.outputs {
            let Some(index) = outputs.iter().position(|t| t.name == o.name) else {
                return Err(format!(
                    "unknown output `{}`; the model's outputs are {}",
                    o.name,
                    list(outputs)
                ));
            };
            if choices.iter().any(|c| c.index == index) {
                return Err(format!("output `{}` is asked for twice", o.name));
            }
            let binary = match o.parameters.get("binary_data") {
                Some(Value::Bool(b)) => *b,
                _ => all_binary,
            };
            choices.push(OutputChoice { index, binary });
        }
        choices
    };
    Ok(TypedInfer {
        id: head.id,
        slo: head.slo,
        input,
        outputs: choices,
    })
}

/// The answer's `outputs` entries and binary tail: `output` (one item of every
/// output, in the model's order) split by the outputs' item bytes, `choices` rendered.
pub(super) fn render_outputs<'a>(
    outputs: &'a [TensorSpec],
    choices: &[OutputChoice],
    output: &'a [u8],
) -> Result<(Vec<OutputEntry<'a>>, Vec<u8>), String> {
    let total: usize = outputs.iter().map(|t| t.item_bytes as usize).sum();
    if output.len() != total {
        return Err(format!(
            "the worker answered {} output bytes; the model's outputs hold {total}",
            output.len()
        ));
    }
    let mut starts = Vec::with_capacity(outputs.len());
    let mut at = 0usize;
    for t in outputs {
        starts.push(at);
        at += t.item_bytes as usize;
    }
    let mut entries = Vec::with_capacity(choices.len());
    let mut tail = Vec::new();
    for c in choices {
        let t = &outputs[c.index];
        let bytes = &output[starts[c.index]..starts[c.index] + t.item_bytes as usize];
        entries.push(if c.binary {
            tail.extend_from_slice(bytes);
            OutputEntry::binary(&t.name, &t.datatype, item_shape(t), bytes.len())
        } else {
            OutputEntry::json(&t.name, &t.datatype, item_shape(t), bytes)?
        });
    }
    Ok((entries, tail))
}

/// The OIP metadata of tensors: names, datatypes, shapes with `-1` for the batch axis.
pub(super) fn metadata(ts: &[TensorSpec]) -> Value {
    Value::Array(
        ts.iter()
            .map(|t| json!({ "name": t.name, "datatype": t.datatype, "shape": t.shape }))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_typed_of(
        body: &[u8],
        header_len: Option<usize>,
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
    ) -> Result<TypedInfer, String> {
        parse_typed(&Bytes::copy_from_slice(body), header_len, inputs, outputs)
    }

    fn spec(name: &str, datatype: &str, shape: &[i64], item_bytes: u32) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
            item_bytes,
        }
    }

    fn model() -> (Vec<TensorSpec>, Vec<TensorSpec>) {
        (
            vec![
                spec("x", "FP32", &[-1, 2], 8),
                spec("ids", "INT64", &[-1, 1], 8),
            ],
            vec![
                spec("y", "FP16", &[-1, 2], 4),
                spec("z", "INT32", &[-1, 1], 4),
            ],
        )
    }

    #[test]
    fn inputs_in_any_order_are_packed_in_the_models_order() {
        let (i, o) = model();
        let b = br#"{"inputs":[
            {"name":"ids","datatype":"INT64","shape":[1,1],"data":[-2]},
            {"name":"x","datatype":"FP32","shape":[1,2],"data":[[1.5, -1]]}]}"#;
        let r = parse_typed_of(b, None, &i, &o).unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&1.5f32.to_le_bytes());
        want.extend_from_slice(&(-1.0f32).to_le_bytes());
        want.extend_from_slice(&(-2i64).to_le_bytes());
        assert_eq!(r.input.to_vec(), want);
        assert_eq!(
            r.outputs,
            [
                OutputChoice {
                    index: 0,
                    binary: false
                },
                OutputChoice {
                    index: 1,
                    binary: false
                }
            ]
        );
    }

    #[test]
    fn binary_inputs_and_an_output_subset() {
        let (i, o) = model();
        let mut body = br#"{"inputs":[
            {"name":"x","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}},
            {"name":"ids","datatype":"INT64","shape":[1,1],"parameters":{"binary_data_size":8}}],
            "outputs":[{"name":"z","parameters":{"binary_data":true}}]}"#
            .to_vec();
        let n = body.len();
        body.extend(1u8..=16);
        let r = parse_typed_of(&body, Some(n), &i, &o).unwrap();
        assert_eq!(r.input.to_vec(), (1u8..=16).collect::<Vec<_>>());
        assert_eq!(
            r.outputs,
            [OutputChoice {
                index: 1,
                binary: true
            }]
        );
    }

    /// Binary tensors are slices of the request body, in the model's input order
    /// whatever the request's: an image's bytes are not copied out of the body.
    #[test]
    fn binary_inputs_are_slices_of_the_body() {
        let (i, o) = model();
        let mut body = br#"{"inputs":[
            {"name":"ids","datatype":"INT64","shape":[1,1],"parameters":{"binary_data_size":8}},
            {"name":"x","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}}]}"#
            .to_vec();
        let n = body.len();
        body.extend(1u8..=16);
        let body = Bytes::from(body);
        let r = parse_typed(&body, Some(n), &i, &o).unwrap();
        let at: Vec<*const u8> = r.input.segments().iter().map(|s| s.as_ptr()).collect();
        assert_eq!(at, [body[n + 8..].as_ptr(), body[n..].as_ptr()]);
        let want: Vec<u8> = (9u8..=16).chain(1..=8).collect();
        assert_eq!(r.input.to_vec(), want);
    }

    #[test]
    fn bad_tensors_name_what_was_expected() {
        let (i, o) = model();
        let x = r#"{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}"#;
        let ids = r#"{"name":"ids","datatype":"INT64","shape":[1,1],"data":[3]}"#;
        let cases = [
            (format!(r#"{{"inputs":[{x}]}}"#), "missing input `ids` (INT64 [1, 1])"),
            (
                format!(r#"{{"inputs":[{x},{ids},{{"name":"w","datatype":"FP32","shape":[1],"data":[1]}}]}}"#),
                "unknown input `w`; the model's inputs are `x` (FP32 [1, 2]), `ids`",
            ),
            (format!(r#"{{"inputs":[{x},{x},{ids}]}}"#), "given twice"),
            (
                format!(r#"{{"inputs":[{ids},{{"name":"x","datatype":"FP64","shape":[1,2],"data":[1,2]}}]}}"#),
                "input `x`: datatype FP64, expected FP32",
            ),
            (
                format!(r#"{{"inputs":[{ids},{{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2,3,4]}}]}}"#),
                "carries 2 items along the batch axis; a request carries exactly one (shape [1, 2])",
            ),
            (
                format!(r#"{{"inputs":[{ids},{{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}}]}}"#),
                "input `x`: shape [1, 3], expected [1, 2]",
            ),
            (
                format!(r#"{{"inputs":[{ids},{{"name":"x","datatype":"FP32","shape":[1,2],"data":[1]}}]}}"#),
                "input `x`: 1 values, expected 2",
            ),
            (
                format!(r#"{{"inputs":[{x},{ids}],"outputs":[{{"name":"q"}}]}}"#),
                "unknown output `q`; the model's outputs are `y` (FP16 [1, 2]), `z` (INT32 [1, 1])",
            ),
        ];
        for (body, says) in cases {
            let e = parse_typed_of(body.as_bytes(), None, &i, &o).unwrap_err();
            assert!(e.contains(says), "{body}: {e}");
        }
        let mut body = format!(
            r#"{{"inputs":[{ids},{{"name":"x","datatype":"FP32","shape":[1,2],"parameters":{{"binary_data_size":4}}}}]}}"#
        )
        .into_bytes();
        let n = body.len();
        body.extend([0; 4]);
        let e = parse_typed_of(&body, Some(n), &i, &o).unwrap_err();
        assert!(e.contains("binary_data_size 4, expected 8 bytes"), "{e}");
    }

    #[test]
    fn outputs_are_split_and_rendered_in_their_datatypes() {
        let (_, o) = model();
        let mut out = Vec::new();
        out.extend_from_slice(&0x3c00u16.to_le_bytes()); // 1.0
        out.extend_from_slice(&0xc000u16.to_le_bytes()); // -2.0
        out.extend_from_slice(&(-7i32).to_le_bytes());
        let all = [
            OutputChoice {
                index: 1,
                binary: true,
            },
            OutputChoice {
                index: 0,
                binary: false,
            },
        ];
        let (entries, tail) = render_outputs(&o, &all, &out).unwrap();
        let entries = serde_json::to_value(&entries).unwrap();
        assert_eq!(entries[0]["name"], "z");
        assert_eq!(entries[0]["shape"], json!([1, 1]));
        assert_eq!(entries[0]["parameters"]["binary_data_size"], 4);
        assert_eq!(tail, (-7i32).to_le_bytes());
        assert_eq!(entries[1]["datatype"], "FP16");
        assert_eq!(entries[1]["data"], json!([1.0, -2.0]));
        assert!(render_outputs(&o, &all, &out[1..]).is_err());
    }
}
