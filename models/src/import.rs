//! ONNX import: a file or bytes -> checked metadata and tract's decluttered typed model
//! with a symbolic batch axis; from it, one optimised single-threaded plan per batch size.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::multithread::Executor;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::prelude::InferenceModelExt;

use crate::datatype::DataType;
use crate::error::ImportError;
use crate::metadata::{ModelMetadata, TensorSpec};
use crate::onnx_graph;
use crate::runner::{BatchPlan, ModelRunner};

/// Weights limit of [`ImportLimits::default`]: 4 GiB.
pub const DEFAULT_MAX_WEIGHT_BYTES: u64 = 4 << 30;
/// Bytes a model file may exceed its weights limit by (graph structure, names).
pub const FILE_OVERHEAD_ALLOWANCE: u64 = 16 << 20;

/// Limits a model must fit at import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// Most bytes of constant tensors (weights) a model may have: what a device's page
    /// cache can hold for it. Files larger than this plus [`FILE_OVERHEAD_ALLOWANCE`]
    /// are refused before they are read.
    pub max_weight_bytes: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self {
            max_weight_bytes: DEFAULT_MAX_WEIGHT_BYTES,
        }
    }
}

/// An imported ONNX model: its metadata and tract's decluttered typed model, whose
/// inputs' and outputs' first axis is the batch symbol.
///
/// The decluttered model is the level a GPU executor can walk (BatchNorm folded into
/// `Conv`, Gemm and MatMul as `EinSum`, ReLU as `Max`, ...). [`Self::plan`] makes it
/// runnable on the CPU.
#[derive(Debug, Clone)]
pub struct ImportedModel {
    metadata: Arc<ModelMetadata>,
    decluttered: TypedModel,
    batch_symbol: Symbol,
}

fn tract_error(
    model: &str,
    stage: impl Into<String>,
) -> impl FnOnce(TractError) -> ImportError + '_ {
    let stage = stage.into();
    move |e| ImportError::Tract {
        model: model.into(),
        stage,
        reason: format!("{e:#}"),
    }
}

impl ImportedModel {
    /// Import the ONNX file at `path` as model `name`.
    pub fn import_file(
        name: &str,
        path: &Path,
        limits: &ImportLimits,
    ) -> Result<Self, ImportError> {
        let read_error = |source| ImportError::Read {
            model: name.into(),
            path: path.to_owned(),
            source,
        };
        let file_bytes = std::fs::metadata(path).map_err(read_error)?.len();
        let file_limit = limits
            .max_weight_bytes
            .saturating_add(FILE_OVERHEAD_ALLOWANCE);
        if file_bytes > file_limit {
            return Err(ImportError::TooLarge {
                model: name.into(),
                what: "file",
                bytes: file_bytes,
                limit: file_limit,
            });
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        let dir = path.parent().and_then(Path::to_str);
        Self::import_proto(name, decode(name, &bytes)?, dir, limits)
    }

    /// Import an ONNX model from its bytes (external data files are not reachable).
    pub fn import_bytes(
        name: &str,
        bytes: &[u8],
        limits: &ImportLimits,
    ) -> Result<Self, ImportError> {
        Self::import_proto(name, decode(name, bytes)?, None, limits)
    }

    fn import_proto(
        name: &str,
        mut proto: ModelProto,
        model_dir: Option<&str>,
        limits: &ImportLimits,
    ) -> Result<Self, ImportError> {
        let invalid = |reason: &str| ImportError::InvalidOnnx {
            model: name.into(),
            reason: reason.into(),
        };
        let onnx = onnx().with_ignore_value_info(true);
        let graph = proto
            .graph
            .as_mut()
            .ok_or_else(|| invalid("the model holds no graph"))?;
        let ops = onnx_graph::unsupported_ops(graph, &|op| onnx.op_register.0.contains_key(op));
        if !ops.is_empty() {
            return Err(ImportError::UnsupportedOps {
                model: name.into(),
                ops,
            });
        }
        let weight_bytes = onnx_graph::constant_bytes(graph);
        if weight_bytes > limits.max_weight_bytes {
            return Err(ImportError::TooLarge {
                model: name.into(),
                what: "weights",
                bytes: weight_bytes,
                limit: limits.max_weight_bytes,
            });
        }
        let batch_name = onnx_graph::normalise_batch_axis(name, graph)?;
        let input_names: Vec<String> = onnx_graph::real_input_indices(graph)
            .into_iter()
            .map(|i| graph.input[i].name.clone())
            .collect();
        let output_names: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();

        let parsed = onnx
            .parse(&proto, model_dir)
            .map_err(tract_error(name, "parsing"))?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(ImportError::InvalidOnnx {
                model: name.into(),
                reason: format!(
                    "node inputs never produced: {}",
                    parsed.unresolved_inputs.join(", ")
                ),
            });
        }
        let typed = parsed
            .model
            .into_typed()
            .map_err(tract_error(name, "type analysis"))?;
        let decluttered = typed
            .into_decluttered()
            .map_err(tract_error(name, "simplification"))?;
        let batch_symbol = decluttered.symbols.sym(&batch_name);
        let batch_dim = TDim::Sym(batch_symbol.clone());

        let mut inputs = Vec::with_capacity(input_names.len());
        let input_outlets = decluttered
            .input_outlets()
            .map_err(tract_error(name, "reading inputs"))?;
        for (outlet, tensor) in input_outlets.iter().zip(input_names) {
            let fact = decluttered
                .outlet_fact(*outlet)
                .map_err(tract_error(name, "reading inputs"))?;
            inputs.push(tensor_spec(name, tensor, fact, &batch_dim)?);
        }
        let mut outputs = Vec::with_capacity(output_names.len());
        let output_outlets = decluttered
            .output_outlets()
            .map_err(tract_error(name, "reading outputs"))?;
        for (outlet, tensor) in output_outlets.iter().zip(output_names) {
            let fact = decluttered
                .outlet_fact(*outlet)
                .map_err(tract_error(name, "reading outputs"))?;
            outputs.push(tensor_spec(name, tensor, fact, &batch_dim)?);
        }
        let metadata = ModelMetadata {
            name: name.into(),
            inputs,
            outputs,
            weight_bytes,
        };
        Ok(Self {
            metadata: Arc::new(metadata),
            decluttered,
            batch_symbol,
        })
    }

    /// The model's metadata.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// The model's metadata, shared.
    pub fn shared_metadata(&self) -> Arc<ModelMetadata> {
        Arc::clone(&self.metadata)
    }

    /// tract's decluttered typed model, batch axis symbolic (for executors that walk it).
    pub fn decluttered(&self) -> &TypedModel {
        &self.decluttered
    }

    /// The symbol of the batch axis in [`Self::decluttered`].
    pub fn batch_symbol(&self) -> &Symbol {
        &self.batch_symbol
    }

    /// The typed model with the batch axis fixed at `batch_size`, optimised for the CPU.
    pub fn optimised_for_batch(&self, batch_size: usize) -> Result<TypedModel, ImportError> {
        let name = self.metadata.name.as_str();
        let value = i64::try_from(batch_size).unwrap_or(i64::MAX);
        let subs = HashMap::from([(self.batch_symbol.clone(), TDim::Val(value))]);
        let fixed = self
            .decluttered
            .set_symbols(&subs)
            .map_err(tract_error(name, format!("fixing batch size {batch_size}")))?;
        fixed.into_optimized().map_err(tract_error(
            name,
            format!("optimising batch size {batch_size}"),
        ))
    }

    /// Build one runnable plan per batch size (each `>= 1`, no repeats; any order) and a
    /// runner holding them. The plans run single-threaded on the calling thread.
    pub fn plan(&self, batch_sizes: &[usize]) -> Result<ModelRunner, ImportError> {
        let name = self.metadata.name.as_str();
        let bad = |reason: &str| ImportError::BadBatchSizes {
            model: name.into(),
            sizes: batch_sizes.to_vec(),
            reason: reason.into(),
        };
        let mut sizes = batch_sizes.to_vec();
        sizes.sort_unstable();
        if sizes.is_empty() {
            return Err(bad("no batch size"));
        }
        if sizes[0] == 0 {
            return Err(bad("a batch size is zero"));
        }
        if sizes.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad("a batch size is repeated"));
        }
        let options = RunOptions {
            executor: Some(Executor::SingleThread),
            ..RunOptions::default()
        };
        let mut plans = Vec::with_capacity(sizes.len());
        for b in sizes {
            let optimised = self.optimised_for_batch(b)?;
            let plan = TypedSimplePlan::new_with_options(optimised, &options)
                .map_err(tract_error(name, format!("planning batch size {b}")))?;
            plans.push(
                BatchPlan::new(&self.metadata, b, plan)
                    .map_err(tract_error(name, format!("preparing batch size {b}")))?,
            );
        }
        Ok(ModelRunner::new(Arc::clone(&self.metadata), plans))
    }
}

/// Decode the protobuf.
fn decode(name: &str, bytes: &[u8]) -> Result<ModelProto, ImportError> {
    if bytes.is_empty() {
        return Err(ImportError::InvalidOnnx {
            model: name.into(),
            reason: "the file is empty".into(),
        });
    }
    ModelProto::decode(bytes).map_err(|e| ImportError::InvalidOnnx {
        model: name.into(),
        reason: format!("protobuf decoding: {e}"),
    })
}

/// The served spec of one input or output fact: a served datatype, the batch symbol
/// first, fixed dimensions after it.
fn tensor_spec(
    model: &str,
    tensor: String,
    fact: &TypedFact,
    batch: &TDim,
) -> Result<TensorSpec, ImportError> {
    let Some(datatype) = DataType::from_datum(fact.datum_type) else {
        return Err(ImportError::UnsupportedDatatype {
            model: model.into(),
            tensor,
            datatype: format!("{:?}", fact.datum_type),
        });
    };
    let dims = fact.shape.dims();
    let no_batch = |tensor: String, reason: String| ImportError::NoBatchDimension {
        model: model.into(),
        tensor,
        reason,
    };
    let Some(first) = dims.first() else {
        return Err(no_batch(tensor, "it is a scalar".into()));
    };
    if first != batch {
        return Err(no_batch(
            tensor,
            format!("its first axis is {first}, not the batch axis {batch}"),
        ));
    }
    let mut shape = Vec::with_capacity(dims.len());
    shape.push(-1);
    for (axis, dim) in dims.iter().enumerate().skip(1) {
        match dim.to_i64() {
            Ok(v) if v >= 0 => shape.push(v),
            _ => {
                return Err(ImportError::DynamicShape {
                    model: model.into(),
                    tensor,
                    axis,
                    dim: dim.to_string(),
                })
            }
        }
    }
    Ok(TensorSpec {
        name: tensor,
        datatype,
        shape,
    })
}
