//! Models that cannot be served are refused at import with the right typed error, and
//! bad run calls get a clear error and leave the runner usable.

use clockwork_models::{ImportError, ImportLimits, ImportedModel, ModelKind, RunError};
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType as OnnxDataType;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::tensor_shape_proto::Dimension;
use tract_onnx::pb::type_proto::{Tensor as TensorType, Value as TypeValue};
use tract_onnx::pb::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};

fn value_info(name: &str, elem_type: OnnxDataType, dims: Vec<Option<Dim>>) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: elem_type as i32,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|value| Dimension {
                            value,
                            ..Dimension::default()
                        })
                        .collect(),
                }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

fn batch() -> Option<Dim> {
    Some(Dim::DimParam("N".into()))
}

fn fixed(v: i64) -> Option<Dim> {
    Some(Dim::DimValue(v))
}

/// A one-node model `y = op(x, extra...)`.
fn one_node(
    op: &str,
    x: ValueInfoProto,
    y: ValueInfoProto,
    initializer: Vec<TensorProto>,
) -> Vec<u8> {
    let mut inputs = vec![x.name.clone()];
    inputs.extend(initializer.iter().map(|t| t.name.clone()));
    let graph = GraphProto {
        node: vec![NodeProto {
            input: inputs,
            output: vec![y.name.clone()],
            name: "node".into(),
            op_type: op.into(),
            ..NodeProto::default()
        }],
        name: "g".into(),
        initializer,
        input: vec![x],
        output: vec![y],
        ..GraphProto::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..ModelProto::default()
    }
    .encode_to_vec()
}

fn import(bytes: &[u8]) -> Result<ImportedModel, ImportError> {
    ImportedModel::import_bytes("m", bytes, &ImportLimits::default())
}

#[test]
fn a_minus_one_batch_axis_is_accepted() {
    let x = value_info("x", OnnxDataType::Float, vec![fixed(-1), fixed(4)]);
    let y = value_info("y", OnnxDataType::Float, vec![fixed(-1), fixed(4)]);
    let model = import(&one_node("Relu", x, y, vec![])).unwrap();
    assert_eq!(model.metadata().inputs[0].shape, vec![-1, 4]);
    assert_eq!(model.metadata().outputs[0].shape, vec![-1, 4]);
    let mut runner = model.plan(&[2]).unwrap();
    let input: Vec<u8> = [-1.0f32, 2.0, -3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut out = vec![0u8; 16];
    runner.run(1, &[&input], &mut [&mut out]).unwrap();
    let want: Vec<u8> = [0.0f32, 2.0, 0.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(out, want);
}

#[test]
fn garbage_bytes_are_invalid_onnx() {
    let err = import(b"\xff\xfe this is not a protobuf \x00\x01").unwrap_err();
    assert!(matches!(err, ImportError::InvalidOnnx { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("model `m`: not a valid ONNX model"),
        "{err}"
    );
    let err = import(b"").unwrap_err();
    assert!(matches!(err, ImportError::InvalidOnnx { .. }), "{err}");
}

#[test]
fn a_truncated_file_is_invalid_onnx() {
    let bytes = ModelKind::SmallCnn.onnx_bytes(1);
    for cut in [bytes.len() / 2, bytes.len() - 3, 10] {
        let err = import(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(err, ImportError::InvalidOnnx { .. }),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn a_fixed_first_axis_is_no_batch_dimension() {
    let x = value_info("x", OnnxDataType::Float, vec![fixed(1), fixed(4)]);
    let y = value_info("y", OnnxDataType::Float, vec![fixed(1), fixed(4)]);
    let err = import(&one_node("Relu", x, y, vec![])).unwrap_err();
    match &err {
        ImportError::NoBatchDimension {
            model,
            tensor,
            reason,
        } => {
            assert_eq!((model.as_str(), tensor.as_str()), ("m", "x"));
            assert!(reason.contains("fixed at 1"), "{reason}");
        }
        other => panic!("wrong error: {other}"),
    }
    let scalar = value_info("x", OnnxDataType::Float, vec![]);
    let y = value_info("y", OnnxDataType::Float, vec![]);
    let err = import(&one_node("Relu", scalar, y, vec![])).unwrap_err();
    assert!(matches!(err, ImportError::NoBatchDimension { .. }), "{err}");
}

#[test]
fn an_output_without_the_batch_axis_is_refused() {
    // ReduceSum over every axis: the output loses the batch axis.
    let x = value_info("x", OnnxDataType::Float, vec![batch(), fixed(4)]);
    let y = value_info("y", OnnxDataType::Float, vec![]);
    let err = import(&one_node("ReduceSum", x, y, vec![])).unwrap_err();
    match &err {
        ImportError::NoBatchDimension { tensor, .. } => assert_eq!(tensor, "y"),
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn a_dynamic_inner_axis_is_refused() {
    let x = value_info(
        "x",
        OnnxDataType::Float,
        vec![batch(), Some(Dim::DimParam("L".into()))],
    );
    let y = value_info(
        "y",
        OnnxDataType::Float,
        vec![batch(), Some(Dim::DimParam("L".into()))],
    );
    let err = import(&one_node("Relu", x, y, vec![])).unwrap_err();
    match &err {
        ImportError::DynamicShape { tensor, axis, .. } => {
            assert_eq!((tensor.as_str(), *axis), ("x", 1))
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn an_unsupported_op_is_named() {
    // Det (matrix determinant) is a standard ONNX operator tract does not implement.
    let x = value_info("x", OnnxDataType::Float, vec![batch(), fixed(3), fixed(3)]);
    let y = value_info("y", OnnxDataType::Float, vec![batch()]);
    let err = import(&one_node("Det", x, y, vec![])).unwrap_err();
    match &err {
        ImportError::UnsupportedOps { ops, .. } => assert_eq!(ops, &vec!["Det".to_owned()]),
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("Det"), "{err}");
}

#[test]
fn unsupported_datatypes_are_refused() {
    for (elem, name) in [
        (OnnxDataType::Bool, "BOOL"),
        (OnnxDataType::String, "STRING"),
        (OnnxDataType::Bfloat16, "BFLOAT16"),
    ] {
        let x = value_info("x", elem, vec![batch(), fixed(4)]);
        let y = value_info("y", elem, vec![batch(), fixed(4)]);
        let err = import(&one_node("Identity", x, y, vec![])).unwrap_err();
        match &err {
            ImportError::UnsupportedDatatype {
                tensor, datatype, ..
            } => {
                assert_eq!(tensor, "x");
                assert!(datatype.contains(name), "{datatype}");
            }
            other => panic!("{name}: wrong error: {other}"),
        }
    }
    // A served input whose declared output type is not served.
    let x = value_info("x", OnnxDataType::Float, vec![batch(), fixed(4)]);
    let y = value_info("y", OnnxDataType::Bool, vec![batch(), fixed(4)]);
    let err = import(&one_node("Identity", x, y, vec![])).unwrap_err();
    assert!(
        matches!(err, ImportError::UnsupportedDatatype { ref tensor, .. } if tensor == "y"),
        "{err}"
    );
}

#[test]
fn int64_inputs_are_served() {
    let x = value_info("ids", OnnxDataType::Int64, vec![batch(), fixed(3)]);
    let y = value_info("y", OnnxDataType::Int64, vec![batch(), fixed(3)]);
    let model = import(&one_node("Neg", x, y, vec![])).unwrap();
    let spec = &model.metadata().inputs[0];
    assert_eq!(spec.datatype.oip_name(), "INT64");
    assert_eq!(spec.bytes_per_request(), 24);
    let mut runner = model.plan(&[1]).unwrap();
    let input: Vec<u8> = [5i64, -7, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = vec![0u8; 24];
    runner.run(1, &[&input], &mut [&mut out]).unwrap();
    let want: Vec<u8> = [-5i64, 7, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(out, want);
}

#[test]
fn a_model_over_the_weight_limit_is_refused() {
    let bytes = ModelKind::SmallCnn.onnx_bytes(1);
    let weights = ImportedModel::import_bytes("m", &bytes, &ImportLimits::default())
        .unwrap()
        .metadata()
        .weight_bytes;
    let err = ImportedModel::import_bytes(
        "m",
        &bytes,
        &ImportLimits {
            max_weight_bytes: weights - 1,
        },
    )
    .unwrap_err();
    match err {
        ImportError::TooLarge {
            what, bytes, limit, ..
        } => assert_eq!((what, bytes, limit), ("weights", weights, weights - 1)),
        other => panic!("wrong error: {other}"),
    }
    assert!(ImportedModel::import_bytes(
        "m",
        &bytes,
        &ImportLimits {
            max_weight_bytes: weights
        }
    )
    .is_ok());

    // A file too large is refused before it is read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.onnx");
    std::fs::write(
        &path,
        vec![0u8; (clockwork_models::FILE_OVERHEAD_ALLOWANCE + 11) as usize],
    )
    .unwrap();
    let err = ImportedModel::import_file(
        "big",
        &path,
        &ImportLimits {
            max_weight_bytes: 10,
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, ImportError::TooLarge { what: "file", .. }),
        "{err}"
    );
    let err = ImportedModel::import_file(
        "gone",
        &dir.path().join("nope.onnx"),
        &ImportLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ImportError::Read { .. }), "{err}");
    assert!(err.to_string().contains("model `gone`"), "{err}");
}

#[test]
fn bad_plans_and_runs_get_clear_errors() {
    let model = ImportedModel::import_bytes(
        "id",
        &ModelKind::Identity.onnx_bytes(1),
        &ImportLimits::default(),
    )
    .unwrap();
    for sizes in [&[][..], &[0, 1][..], &[2, 2][..]] {
        let err = model.plan(sizes).unwrap_err();
        assert!(
            matches!(err, ImportError::BadBatchSizes { .. }),
            "{sizes:?}: {err}"
        );
    }
    let mut runner = model.plan(&[2, 1]).unwrap();
    assert_eq!(runner.batch_sizes(), vec![1, 2]);
    assert_eq!(runner.plan_batch_size(0), None);
    assert_eq!(runner.plan_batch_size(3), None);
    let input = vec![1u8; 64 * 3];
    let mut out = vec![0u8; 64 * 3];
    let err = runner.run(3, &[&input], &mut [&mut out]).unwrap_err();
    assert!(
        matches!(
            err,
            RunError::BatchSize {
                requests: 3,
                max: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = runner.run(0, &[], &mut []).unwrap_err();
    assert!(
        matches!(err, RunError::BatchSize { requests: 0, .. }),
        "{err}"
    );
    let err = runner.run(1, &[], &mut [&mut out[..64]]).unwrap_err();
    assert!(
        matches!(
            err,
            RunError::BufferCount {
                what: "input",
                given: 0,
                expected: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = runner
        .run(2, &[&input[..100]], &mut [&mut out[..128]])
        .unwrap_err();
    assert!(
        matches!(
            err,
            RunError::BufferSize {
                what: "input",
                given: 100,
                expected: 128,
                ..
            }
        ),
        "{err}"
    );
    let err = runner
        .run(2, &[&input[..128]], &mut [&mut out[..64]])
        .unwrap_err();
    assert!(
        matches!(err, RunError::BufferSize { what: "output", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("model `id`"), "{err}");
    // Still usable.
    runner
        .run(2, &[&input[..128]], &mut [&mut out[..128]])
        .unwrap();
    assert_eq!(&out[..128], &input[..128]);
}
