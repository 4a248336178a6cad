//! Tensor element types as the Open Inference Protocol (OIP, KServe v2) names them, and
//! their mapping to ONNX and tract types.
//!
//! Only the fixed-size numeric types are served: every bit pattern of them is a valid
//! value, so request bytes can be copied into a tensor without inspection. `BOOL`,
//! `BYTES` (strings), bfloat16, 8-bit floats and complex types are refused at import.

use std::fmt;
use std::str::FromStr;

use tract_onnx::pb::tensor_proto::DataType as OnnxDataType;
use tract_onnx::prelude::DatumType;

/// The element type of a served tensor, named as OIP does (`FP32`, `INT64`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `UINT8`
    Uint8,
    /// `UINT16`
    Uint16,
    /// `UINT32`
    Uint32,
    /// `UINT64`
    Uint64,
    /// `INT8`
    Int8,
    /// `INT16`
    Int16,
    /// `INT32`
    Int32,
    /// `INT64`
    Int64,
    /// `FP16` (IEEE half precision)
    Fp16,
    /// `FP32`
    Fp32,
    /// `FP64`
    Fp64,
}

impl DataType {
    /// Every served type, in OIP's order.
    pub const ALL: [Self; 11] = [
        Self::Uint8,
        Self::Uint16,
        Self::Uint32,
        Self::Uint64,
        Self::Int8,
        Self::Int16,
        Self::Int32,
        Self::Int64,
        Self::Fp16,
        Self::Fp32,
        Self::Fp64,
    ];

    /// The OIP name: `"FP32"`, `"INT64"`, ...
    pub const fn oip_name(self) -> &'static str {
        match self {
            Self::Uint8 => "UINT8",
            Self::Uint16 => "UINT16",
            Self::Uint32 => "UINT32",
            Self::Uint64 => "UINT64",
            Self::Int8 => "INT8",
            Self::Int16 => "INT16",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Fp16 => "FP16",
            Self::Fp32 => "FP32",
            Self::Fp64 => "FP64",
        }
    }

    /// Bytes of one element.
    pub const fn size_bytes(self) -> usize {
        match self {
            Self::Uint8 | Self::Int8 => 1,
            Self::Uint16 | Self::Int16 | Self::Fp16 => 2,
            Self::Uint32 | Self::Int32 | Self::Fp32 => 4,
            Self::Uint64 | Self::Int64 | Self::Fp64 => 8,
        }
    }

    /// The served type of an ONNX `TensorProto.DataType` code, or `Err` with the ONNX
    /// name (or the raw code) of a type that is not served.
    pub fn from_onnx(code: i32) -> Result<Self, String> {
        let onnx = OnnxDataType::try_from(code).map_err(|_| format!("ONNX type code {code}"))?;
        Ok(match onnx {
            OnnxDataType::Uint8 => Self::Uint8,
            OnnxDataType::Uint16 => Self::Uint16,
            OnnxDataType::Uint32 => Self::Uint32,
            OnnxDataType::Uint64 => Self::Uint64,
            OnnxDataType::Int8 => Self::Int8,
            OnnxDataType::Int16 => Self::Int16,
            OnnxDataType::Int32 => Self::Int32,
            OnnxDataType::Int64 => Self::Int64,
            OnnxDataType::Float16 => Self::Fp16,
            OnnxDataType::Float => Self::Fp32,
            OnnxDataType::Double => Self::Fp64,
            other => return Err(format!("ONNX {}", other.as_str_name())),
        })
    }

    /// The ONNX `TensorProto.DataType` code.
    pub fn onnx_code(self) -> i32 {
        let onnx = match self {
            Self::Uint8 => OnnxDataType::Uint8,
            Self::Uint16 => OnnxDataType::Uint16,
            Self::Uint32 => OnnxDataType::Uint32,
            Self::Uint64 => OnnxDataType::Uint64,
            Self::Int8 => OnnxDataType::Int8,
            Self::Int16 => OnnxDataType::Int16,
            Self::Int32 => OnnxDataType::Int32,
            Self::Int64 => OnnxDataType::Int64,
            Self::Fp16 => OnnxDataType::Float16,
            Self::Fp32 => OnnxDataType::Float,
            Self::Fp64 => OnnxDataType::Double,
        };
        onnx as i32
    }

    /// The served type of a tract datum type, if it is one.
    pub fn from_datum(datum: DatumType) -> Option<Self> {
        Some(match datum {
            DatumType::U8 => Self::Uint8,
            DatumType::U16 => Self::Uint16,
            DatumType::U32 => Self::Uint32,
            DatumType::U64 => Self::Uint64,
            DatumType::I8 => Self::Int8,
            DatumType::I16 => Self::Int16,
            DatumType::I32 => Self::Int32,
            DatumType::I64 => Self::Int64,
            DatumType::F16 => Self::Fp16,
            DatumType::F32 => Self::Fp32,
            DatumType::F64 => Self::Fp64,
            _ => return None,
        })
    }

    /// The tract datum type of this element type.
    pub const fn datum(self) -> DatumType {
        match self {
            Self::Uint8 => DatumType::U8,
            Self::Uint16 => DatumType::U16,
            Self::Uint32 => DatumType::U32,
            Self::Uint64 => DatumType::U64,
            Self::Int8 => DatumType::I8,
            Self::Int16 => DatumType::I16,
            Self::Int32 => DatumType::I32,
            Self::Int64 => DatumType::I64,
            Self::Fp16 => DatumType::F16,
            Self::Fp32 => DatumType::F32,
            Self::Fp64 => DatumType::F64,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.oip_name())
    }
}

/// An OIP datatype name that is not one of the served types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown or unsupported OIP datatype `{0}`")]
pub struct UnknownDataType(pub String);

impl FromStr for DataType {
    type Err = UnknownDataType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.oip_name() == s)
            .ok_or_else(|| UnknownDataType(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oip_names_round_trip() {
        for t in DataType::ALL {
            assert_eq!(t.oip_name().parse::<DataType>(), Ok(t));
            assert_eq!(DataType::from_onnx(t.onnx_code()), Ok(t));
            assert_eq!(DataType::from_datum(t.datum()), Some(t));
        }
        assert!("BOOL".parse::<DataType>().is_err());
        assert!("fp32".parse::<DataType>().is_err());
    }

    #[test]
    fn unserved_onnx_types_are_named() {
        let err = DataType::from_onnx(OnnxDataType::Bfloat16 as i32).unwrap_err();
        assert!(err.contains("BFLOAT16"), "{err}");
        let err = DataType::from_onnx(OnnxDataType::Bool as i32).unwrap_err();
        assert!(err.contains("BOOL"), "{err}");
        assert!(DataType::from_onnx(9999).unwrap_err().contains("9999"));
    }

    #[test]
    fn sizes() {
        assert_eq!(DataType::Fp16.size_bytes(), 2);
        assert_eq!(DataType::Fp32.size_bytes(), 4);
        assert_eq!(DataType::Int64.size_bytes(), 8);
        assert_eq!(DataType::Uint8.size_bytes(), 1);
    }
}
