//! Checks on the ONNX protobuf before tract sees it: operators tract lacks, the batch
//! axis of every input (made one named symbol), fixed other axes, served datatypes, and
//! the bytes of the constant tensors.

use std::collections::{BTreeSet, HashSet};

use tract_onnx::pb::tensor_proto::DataType as OnnxDataType;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::{GraphProto, TensorProto};

use crate::datatype::DataType;
use crate::error::ImportError;

/// The batch symbol's name when no input names its first axis.
pub(crate) const DEFAULT_BATCH_SYMBOL: &str = "batch";

/// Operator types used in `graph` (and its subgraphs) that `known` lacks, sorted, each once.
pub(crate) fn unsupported_ops(graph: &GraphProto, known: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut missing = BTreeSet::new();
    collect_unsupported(graph, known, &mut missing);
    missing.into_iter().collect()
}

fn collect_unsupported(
    graph: &GraphProto,
    known: &dyn Fn(&str) -> bool,
    missing: &mut BTreeSet<String>,
) {
    for node in &graph.node {
        if !known(&node.op_type) {
            missing.insert(node.op_type.clone());
        }
        for attr in &node.attribute {
            for sub in attr.g.iter().chain(&attr.graphs) {
                collect_unsupported(sub, known, missing);
            }
        }
    }
}

/// Names of the graph's inputs that are not initializers (the model's real inputs).
pub(crate) fn real_input_indices(graph: &GraphProto) -> Vec<usize> {
    let initialized: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    (0..graph.input.len())
        .filter(|&i| !initialized.contains(graph.input[i].name.as_str()))
        .collect()
}

/// Check every real input (served datatype, a variable first axis, fixed other axes) and
/// rewrite its first axis to one `dim_param`, the batch symbol, whose name is returned:
/// the first input's own `dim_param`, or [`DEFAULT_BATCH_SYMBOL`] when its first axis is
/// `-1` or unnamed.
pub(crate) fn normalise_batch_axis(
    model: &str,
    graph: &mut GraphProto,
) -> Result<String, ImportError> {
    let inputs = real_input_indices(graph);
    if inputs.is_empty() {
        return Err(ImportError::InvalidOnnx {
            model: model.into(),
            reason: "the graph has no inputs".into(),
        });
    }
    if graph.output.is_empty() {
        return Err(ImportError::InvalidOnnx {
            model: model.into(),
            reason: "the graph has no outputs".into(),
        });
    }
    let mut batch_name: Option<String> = None;
    for &ix in &inputs {
        let input = &graph.input[ix];
        let tensor = input.name.clone();
        let Some(TypeValue::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(ImportError::UnsupportedDatatype {
                model: model.into(),
                tensor,
                datatype: "a non-tensor type".into(),
            });
        };
        DataType::from_onnx(t.elem_type).map_err(|datatype| ImportError::UnsupportedDatatype {
            model: model.into(),
            tensor: tensor.clone(),
            datatype,
        })?;
        let no_batch = |reason: String| ImportError::NoBatchDimension {
            model: model.into(),
            tensor: tensor.clone(),
            reason,
        };
        let Some(shape) = t.shape.as_ref() else {
            return Err(no_batch("its shape is not declared".into()));
        };
        let Some(first) = shape.dim.first() else {
            return Err(no_batch("it is a scalar".into()));
        };
        match &first.value {
            Some(Dim::DimValue(v)) if *v >= 0 => {
                return Err(no_batch(format!("its first axis is fixed at {v}")));
            }
            Some(Dim::DimParam(p)) if !p.is_empty() && p != "?" => {
                batch_name.get_or_insert_with(|| p.clone());
            }
            _ => {
                batch_name.get_or_insert_with(|| DEFAULT_BATCH_SYMBOL.to_owned());
            }
        }
        for (axis, dim) in shape.dim.iter().enumerate().skip(1) {
            match &dim.value {
                Some(Dim::DimValue(v)) if *v >= 0 => {}
                other => {
                    let dim = match other {
                        Some(Dim::DimValue(v)) => v.to_string(),
                        Some(Dim::DimParam(p)) => format!("dim_param `{p}`"),
                        None => "unnamed".into(),
                    };
                    return Err(ImportError::DynamicShape {
                        model: model.into(),
                        tensor,
                        axis,
                        dim,
                    });
                }
            }
        }
    }
    let batch_name = batch_name.unwrap_or_else(|| DEFAULT_BATCH_SYMBOL.to_owned());
    for &ix in &inputs {
        if let Some(TypeValue::TensorType(t)) = graph.input[ix]
            .r#type
            .as_mut()
            .and_then(|t| t.value.as_mut())
        {
            if let Some(first) = t.shape.as_mut().and_then(|s| s.dim.first_mut()) {
                first.value = Some(Dim::DimParam(batch_name.clone()));
            }
        }
    }
    for output in &graph.output {
        if let Some(TypeValue::TensorType(t)) =
            output.r#type.as_ref().and_then(|t| t.value.as_ref())
        {
            if t.elem_type != OnnxDataType::Undefined as i32 {
                DataType::from_onnx(t.elem_type).map_err(|datatype| {
                    ImportError::UnsupportedDatatype {
                        model: model.into(),
                        tensor: output.name.clone(),
                        datatype,
                    }
                })?;
            }
        }
    }
    Ok(batch_name)
}

/// Bytes of the graph's constant tensors: initializers and `Constant` nodes' values,
/// subgraphs included.
pub(crate) fn constant_bytes(graph: &GraphProto) -> u64 {
    let mut total: u64 = graph.initializer.iter().map(tensor_bytes).sum();
    for node in &graph.node {
        for attr in &node.attribute {
            if node.op_type == "Constant" {
                total = total.saturating_add(attr.t.as_ref().map_or(0, tensor_bytes));
            }
            for sub in attr.g.iter().chain(&attr.graphs) {
                total = total.saturating_add(constant_bytes(sub));
            }
        }
    }
    total
}

/// Bytes of one tensor's data: its element count times its element size.
fn tensor_bytes(t: &TensorProto) -> u64 {
    if t.data_type == OnnxDataType::String as i32 {
        return t.string_data.iter().map(|s| s.len() as u64).sum();
    }
    let elements = t
        .dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?));
    let size = match DataType::from_onnx(t.data_type) {
        Ok(dt) => dt.size_bytes() as u64,
        Err(_) => match OnnxDataType::try_from(t.data_type) {
            Ok(OnnxDataType::Bfloat16) => 2,
            Ok(OnnxDataType::Complex64) => 8,
            Ok(OnnxDataType::Complex128) => 16,
            _ => 1,
        },
    };
    match elements {
        Some(n) => n.saturating_mul(size),
        // Negative or overflowing dims: count what is stored.
        None => t.raw_data.len() as u64,
    }
}
