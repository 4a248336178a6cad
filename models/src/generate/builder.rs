//! A small ONNX graph builder over `tract_onnx::pb` types, with seeded weights: each
//! layer adds its node and its initializers, named uniquely.

use clockwork_core::rng::Rng;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType as OnnxDataType;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::tensor_shape_proto::Dimension;
use tract_onnx::pb::type_proto::{Tensor as TensorType, Value as TypeValue};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// ONNX operator set the generated models use.
pub(crate) const OPSET: i64 = 13;
/// ONNX IR version written.
pub(crate) const IR_VERSION: i64 = 8;
/// The `dim_param` of the generated models' batch axis.
pub(crate) const BATCH_PARAM: &str = "batch";

/// One dimension of a declared input or output.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DimSpec {
    /// The batch axis, written as the `dim_param` [`BATCH_PARAM`].
    Batch,
    /// A fixed size.
    Fixed(i64),
}

/// A square convolution's shape; padding is `kernel / 2` on every side ("same" for odd
/// kernels at stride 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvShape {
    /// Input channels.
    pub(crate) cin: i64,
    /// Output channels.
    pub(crate) cout: i64,
    /// Kernel side.
    pub(crate) kernel: i64,
    /// Stride.
    pub(crate) stride: i64,
}

/// A graph under construction.
#[derive(Debug)]
pub(crate) struct GraphBuilder {
    graph: GraphProto,
    rng: Rng,
    next_id: usize,
}

/// An attribute.
pub(crate) fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..AttributeProto::default()
    }
}

/// An attribute.
pub(crate) fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..AttributeProto::default()
    }
}

/// An attribute.
pub(crate) fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: value,
        ..AttributeProto::default()
    }
}

/// A declared graph input or output.
pub(crate) fn value_info(name: &str, elem_type: OnnxDataType, dims: &[DimSpec]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                DimSpec::Batch => Dim::DimParam(BATCH_PARAM.into()),
                DimSpec::Fixed(v) => Dim::DimValue(*v),
            }),
            ..Dimension::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: elem_type as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

/// An FP32 tensor of `dims` holding `values` (raw little-endian data).
pub(crate) fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: OnnxDataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}

/// A model around `graph`.
pub(crate) fn model_proto(graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "clockwork-models".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..ModelProto::default()
    }
}

impl GraphBuilder {
    /// An empty graph called `name`, weights drawn from `seed`.
    pub(crate) fn new(name: &str, seed: u64) -> Self {
        Self {
            graph: GraphProto {
                name: name.into(),
                ..GraphProto::default()
            },
            rng: Rng::new(seed),
            next_id: 0,
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}", self.next_id)
    }

    /// Declare an input.
    pub(crate) fn input(
        &mut self,
        name: &str,
        elem_type: OnnxDataType,
        dims: &[DimSpec],
    ) -> String {
        self.graph.input.push(value_info(name, elem_type, dims));
        name.into()
    }

    /// Rename the value `value` (the output of the node producing it) to `name` and
    /// declare it a graph output.
    pub(crate) fn output(
        &mut self,
        value: &str,
        name: &str,
        elem_type: OnnxDataType,
        dims: &[DimSpec],
    ) {
        for node in &mut self.graph.node {
            for out in &mut node.output {
                if out == value {
                    name.clone_into(out);
                }
            }
        }
        self.graph.output.push(value_info(name, elem_type, dims));
    }

    /// Add a node of `op_type` reading `inputs`, with one output, returned.
    pub(crate) fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) -> String {
        let output = self.fresh(&op_type.to_lowercase());
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op_type.into(),
            attribute,
            ..NodeProto::default()
        });
        output
    }

    /// Add an initializer of uniform values in `[low, high)`.
    pub(crate) fn uniform(&mut self, prefix: &str, dims: &[i64], low: f32, high: f32) -> String {
        let count: i64 = dims.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| low + (high - low) * self.rng.f64() as f32)
            .collect();
        let name = self.fresh(prefix);
        self.graph
            .initializer
            .push(f32_tensor(&name, dims, &values));
        name
    }

    /// Convolution, with a bias when `bias`. Weights are He-uniform (variance
    /// `2 / fan_in`), so a ReLU after it keeps activations' scale.
    pub(crate) fn conv(&mut self, x: &str, shape: ConvShape, bias: bool) -> String {
        let ConvShape {
            cin,
            cout,
            kernel: k,
            stride,
        } = shape;
        let pad = k / 2;
        let bound = (6.0 / (cin * k * k) as f32).sqrt();
        let w = self.uniform("conv_w", &[cout, cin, k, k], -bound, bound);
        let attrs = vec![
            attr_ints("kernel_shape", &[k, k]),
            attr_ints("strides", &[stride, stride]),
            attr_ints("pads", &[pad, pad, pad, pad]),
        ];
        if bias {
            let b = self.uniform("conv_b", &[cout], -0.05, 0.05);
            self.node("Conv", &[x, &w, &b], attrs)
        } else {
            self.node("Conv", &[x, &w], attrs)
        }
    }

    /// Inference batch normalisation over `c` channels; `gamma_scale` scales the
    /// per-channel gain (a small value keeps a residual branch's contribution small).
    pub(crate) fn batch_norm(&mut self, x: &str, c: i64, gamma_scale: f32) -> String {
        let gamma = self.uniform("bn_gamma", &[c], 0.8 * gamma_scale, 1.2 * gamma_scale);
        let beta = self.uniform("bn_beta", &[c], -0.1, 0.1);
        let mean = self.uniform("bn_mean", &[c], -0.1, 0.1);
        let var = self.uniform("bn_var", &[c], 0.8, 1.2);
        self.node(
            "BatchNormalization",
            &[x, &gamma, &beta, &mean, &var],
            vec![attr_float("epsilon", 1e-5)],
        )
    }

    /// ReLU.
    pub(crate) fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], vec![])
    }

    /// Max pooling, `k x k` window.
    pub(crate) fn max_pool(&mut self, x: &str, k: i64, stride: i64, pad: i64) -> String {
        let attrs = vec![
            attr_ints("kernel_shape", &[k, k]),
            attr_ints("strides", &[stride, stride]),
            attr_ints("pads", &[pad, pad, pad, pad]),
        ];
        self.node("MaxPool", &[x], attrs)
    }

    /// Fully connected layer `x [N, fin] -> [N, fout]` (Gemm with transposed weights).
    pub(crate) fn dense(&mut self, x: &str, fin: i64, fout: i64) -> String {
        let bound = (3.0 / fin as f32).sqrt();
        let w = self.uniform("fc_w", &[fout, fin], -bound, bound);
        let b = self.uniform("fc_b", &[fout], -0.05, 0.05);
        self.node("Gemm", &[x, &w, &b], vec![attr_int("transB", 1)])
    }

    /// The finished model.
    pub(crate) fn finish(self) -> ModelProto {
        model_proto(self.graph)
    }
}
