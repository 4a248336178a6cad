//! The JSON body of a successful inference answer, serialised straight to text.
//!
//! An answer's `data` can hold thousands of numbers (an emulated ResNet-50 answers
//! 4,000 bytes as a `UINT8` array). Built as a `serde_json::Value` tree, each number
//! was an allocated node and the tree a large allocation of its own; in a release
//! profile of the controller at 1,500 requests/s that tree, its serialisation and its
//! page faults took a third of the controller's CPU. Here the body is a set of borrowed
//! structs whose `data` arrays are written element by element from the output bytes,
//! so an answer allocates only its output buffer.
//!
//! This module owns the answer's shape (Open Inference Protocol: `model_name`,
//! `model_version`, `id`, `parameters`, `outputs` with `name`, `datatype`, `shape` and
//! `data` or `parameters.binary_data_size`). What goes in it (which outputs, binary or
//! not) is decided by `oip` and `tensors`.

use serde::ser::{Serialize, SerializeSeq, Serializer};

/// The JSON part of an answer.
#[derive(serde::Serialize)]
pub(super) struct AnswerBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<&'a str>,
    pub(super) model_name: &'a str,
    pub(super) model_version: &'static str,
    pub(super) outputs: Vec<OutputEntry<'a>>,
    pub(super) parameters: AnswerParameters,
}

/// Clockwork's parameters of an answer.
#[derive(serde::Serialize)]
pub(super) struct AnswerParameters {
    pub(super) clockwork_batch_size: u32,
    pub(super) clockwork_controller_latency_us: u64,
    /// Present (and `true`) only when an emulated GPU ran the request.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) clockwork_emulated: bool,
}

/// One entry of an answer's `outputs`: its values as JSON `data`, or their size in
/// the binary tail (`parameters.binary_data_size`).
#[derive(serde::Serialize)]
pub(super) struct OutputEntry<'a> {
    pub(super) name: &'a str,
    pub(super) datatype: &'a str,
    pub(super) shape: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parameters: Option<BinaryDataSize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) data: Option<JsonData<'a>>,
}

impl<'a> OutputEntry<'a> {
    /// An entry whose `bytes` travel in the binary tail.
    pub(super) fn binary(name: &'a str, datatype: &'a str, shape: Vec<i64>, bytes: usize) -> Self {
        Self {
            name,
            datatype,
            shape,
            parameters: Some(BinaryDataSize {
                binary_data_size: bytes,
            }),
            data: None,
        }
    }

    /// A `UINT8` entry written as JSON `data` (every byte count is whole).
    pub(super) fn uint8(name: &'a str, shape: Vec<i64>, bytes: &'a [u8]) -> Self {
        Self {
            name,
            datatype: "UINT8",
            shape,
            parameters: None,
            data: Some(JsonData {
                element: Element::U8,
                bytes,
            }),
        }
    }

    /// An entry whose values are written as JSON `data`.
    pub(super) fn json(
        name: &'a str,
        datatype: &'a str,
        shape: Vec<i64>,
        bytes: &'a [u8],
    ) -> Result<Self, String> {
        Ok(Self {
            name,
            datatype,
            shape,
            parameters: None,
            data: Some(JsonData::new(datatype, bytes)?),
        })
    }
}

/// `{"binary_data_size": N}`.
#[derive(serde::Serialize)]
pub(super) struct BinaryDataSize {
    pub(super) binary_data_size: usize,
}

/// The element types an answer can write as JSON numbers or booleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    F32,
    F64,
}

impl Element {
    fn of(datatype: &str) -> Result<Self, String> {
        Ok(match datatype {
            "BOOL" => Self::Bool,
            "UINT8" => Self::U8,
            "INT8" => Self::I8,
            "UINT16" => Self::U16,
            "INT16" => Self::I16,
            "UINT32" => Self::U32,
            "INT32" => Self::I32,
            "UINT64" => Self::U64,
            "INT64" => Self::I64,
            "FP16" => Self::F16,
            "FP32" => Self::F32,
            "FP64" => Self::F64,
            other => return Err(format!("output datatype {other} cannot be sent as JSON")),
        })
    }

    fn size(self) -> usize {
        match self {
            Self::Bool | Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 | Self::F16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }
}

/// Little-endian output bytes written as a JSON array of their datatype's values.
/// Floats are written as the `f64` of their value (as before: a `FP32` 0.1 reads back
/// as the same `f32`); a non-finite float is written as `null`, as `serde_json` does.
pub(super) struct JsonData<'a> {
    element: Element,
    bytes: &'a [u8],
}

impl<'a> JsonData<'a> {
    /// Refuses a datatype that has no JSON form and bytes that are not whole elements.
    pub(super) fn new(datatype: &str, bytes: &'a [u8]) -> Result<Self, String> {
        let element = Element::of(datatype)?;
        if !bytes.len().is_multiple_of(element.size()) {
            return Err(format!(
                "{} output bytes are not a whole number of {datatype} values",
                bytes.len()
            ));
        }
        Ok(Self { element, bytes })
    }
}

/// The `N`-byte little-endian chunks of `bytes`.
fn chunks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

impl Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.bytes;
        let mut seq = s.serialize_seq(Some(b.len() / self.element.size()))?;
        match self.element {
            Element::Bool => b
                .iter()
                .try_for_each(|&x| seq.serialize_element(&(x != 0)))?,
            Element::U8 => b.iter().try_for_each(|x| seq.serialize_element(x))?,
            Element::I8 => b
                .iter()
                .try_for_each(|&x| seq.serialize_element(&(x as i8)))?,
            Element::U16 => {
                chunks(b).try_for_each(|c| seq.serialize_element(&u16::from_le_bytes(c)))?
            }
            Element::I16 => {
                chunks(b).try_for_each(|c| seq.serialize_element(&i16::from_le_bytes(c)))?
            }
            Element::U32 => {
                chunks(b).try_for_each(|c| seq.serialize_element(&u32::from_le_bytes(c)))?
            }
            Element::I32 => {
                chunks(b).try_for_each(|c| seq.serialize_element(&i32::from_le_bytes(c)))?
            }
            Element::U64 => {
                chunks(b).try_for_each(|c| seq.serialize_element(&u64::from_le_bytes(c)))?
            }
            Element::I64 => {
                chunks(b).try_for_each(|c| seq.serialize_element(&i64::from_le_bytes(c)))?
            }
            Element::F16 => chunks(b).try_for_each(|c| {
                seq.serialize_element(&f64::from(half::f16::from_le_bytes(c).to_f32()))
            })?,
            Element::F32 => chunks(b)
                .try_for_each(|c| seq.serialize_element(&f64::from(f32::from_le_bytes(c))))?,
            Element::F64 => {
                chunks(b).try_for_each(|c| seq.serialize_element(&f64::from_le_bytes(c)))?
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// What the `Value` tree used to give for the same bytes: the reference.
    fn via_value(datatype: &str, bytes: &[u8]) -> Value {
        let e = Element::of(datatype).unwrap();
        let mut out = Vec::new();
        for c in bytes.chunks_exact(e.size()) {
            let mut a = [0u8; 8];
            a[..c.len()].copy_from_slice(c);
            out.push(match e {
                Element::Bool => json!(c[0] != 0),
                Element::U8 => json!(c[0]),
                Element::I8 => json!(c[0] as i8),
                Element::U16 => json!(u16::from_le_bytes([a[0], a[1]])),
                Element::I16 => json!(i16::from_le_bytes([a[0], a[1]])),
                Element::U32 => json!(u32::from_le_bytes([a[0], a[1], a[2], a[3]])),
                Element::I32 => json!(i32::from_le_bytes([a[0], a[1], a[2], a[3]])),
                Element::U64 => json!(u64::from_le_bytes(a)),
                Element::I64 => json!(i64::from_le_bytes(a)),
                Element::F16 => json!(half::f16::from_le_bytes([a[0], a[1]]).to_f32()),
                Element::F32 => json!(f32::from_le_bytes([a[0], a[1], a[2], a[3]])),
                Element::F64 => json!(f64::from_le_bytes(a)),
            });
        }
        Value::Array(out)
    }

    #[test]
    fn every_datatype_writes_the_same_json_as_a_value_tree() {
        // Bytes that make negative, large and fractional values in every width, plus a
        // NaN and an infinity among the floats.
        let mut bytes: Vec<u8> = (0u8..64)
            .map(|i| i.wrapping_mul(37).wrapping_add(200))
            .collect();
        bytes.extend_from_slice(&f32::NAN.to_le_bytes());
        bytes.extend_from_slice(&f32::INFINITY.to_le_bytes());
        bytes.extend_from_slice(&0.1f64.to_le_bytes());
        for dt in [
            "BOOL", "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "UINT64", "INT64",
            "FP16", "FP32", "FP64",
        ] {
            let data = JsonData::new(dt, &bytes).unwrap();
            let text = serde_json::to_string(&data).unwrap();
            let expected = serde_json::to_string(&via_value(dt, &bytes)).unwrap();
            assert_eq!(text, expected, "{dt}");
        }
    }

    #[test]
    fn fp32_values_read_back_as_the_same_f32() {
        let xs = [0.1f32, -2.5, 1e-30, 3.4e38];
        let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
        let text = serde_json::to_string(&JsonData::new("FP32", &bytes).unwrap()).unwrap();
        let back: Vec<f64> = serde_json::from_str(&text).unwrap();
        let back: Vec<f32> = back.into_iter().map(|x| x as f32).collect();
        assert_eq!(back, xs);
    }

    #[test]
    fn refuses_what_has_no_json_form() {
        let e = JsonData::new("BYTES", &[0; 4]).err().unwrap();
        assert!(e.contains("BYTES cannot be sent as JSON"), "{e}");
        let e = JsonData::new("FP32", &[0; 6]).err().unwrap();
        assert!(
            e.contains("6 output bytes are not a whole number of FP32"),
            "{e}"
        );
    }

    #[test]
    fn body_holds_the_protocol_fields_and_no_absent_ones() {
        let out = [1u8, 2, 3];
        let body = AnswerBody {
            id: None,
            model_name: "m",
            model_version: "1",
            outputs: vec![
                OutputEntry::json("a", "UINT8", vec![3], &out).unwrap(),
                OutputEntry::binary("b", "FP32", vec![1, 2], 8),
            ],
            parameters: AnswerParameters {
                clockwork_batch_size: 4,
                clockwork_controller_latency_us: 17,
                clockwork_emulated: false,
            },
        };
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v,
            json!({
                "model_name": "m",
                "model_version": "1",
                "outputs": [
                    {"name": "a", "datatype": "UINT8", "shape": [3], "data": [1, 2, 3]},
                    {"name": "b", "datatype": "FP32", "shape": [1, 2],
                     "parameters": {"binary_data_size": 8}},
                ],
                "parameters": {"clockwork_batch_size": 4, "clockwork_controller_latency_us": 17},
            })
        );
        let with_id = AnswerBody {
            id: Some("r1"),
            parameters: AnswerParameters {
                clockwork_emulated: true,
                ..body.parameters
            },
            ..body
        };
        let v = serde_json::to_value(&with_id).unwrap();
        assert_eq!(v["id"], "r1");
        assert_eq!(v["parameters"]["clockwork_emulated"], true);
    }
}
