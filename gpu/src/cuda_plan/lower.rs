//! Lowering: walk the decluttered tract graph (batch size fixed) in evaluation order and
//! turn each node into a step, fusing a convolution's or GEMM's bias add and ReLU when
//! nothing else reads their inputs; then place every buffer in the arena.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use clockwork_models::{ImportedModel, Precision};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PaddingSpec, SumPool};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::{DataFormat, Reduce, Reducer};
use tract_onnx::tract_core::ops::Downsample;

use super::arena::{self, Lifetime};
use super::step::{set_spans, ArenaSpan, ConvGeometry, ElementwiseOp, Epilogue, PoolGeometry};
use super::step::{PoolKind, Step};
use super::{element_bytes, Plan, PlanError, Weight, WeightLayout};

/// What a graph outlet is to the planner.
#[derive(Debug, Clone)]
enum Value {
    /// A constant tensor (weights, scalars).
    Const(Arc<Tensor>),
    /// An activation: logical (tract, NCHW) dims, NHWC in memory when 4-D, in `buffer`.
    Act { dims: Vec<usize>, buffer: usize },
    /// A 4-D activation downsampled by `stride` without a step yet: a 1x1 convolution
    /// folds the stride in; anything else materialises it.
    Strided {
        dims: Vec<usize>,
        buffer: usize,
        source_dims: Vec<usize>,
        stride: [usize; 2],
    },
}

struct Lowerer<'a> {
    model: &'a TypedModel,
    precision: Precision,
    values: HashMap<OutletId, Value>,
    /// Bytes of each buffer.
    buffers: Vec<u64>,
    /// Steps with the buffers they read and the buffer they write.
    steps: Vec<(Step, Vec<usize>, usize)>,
    weights: Vec<Weight>,
    /// Nodes folded into an earlier step.
    absorbed: HashSet<usize>,
    /// The buffer the host copies the model input into.
    input_buffer: Option<usize>,
}

const NO_SPAN: ArenaSpan = ArenaSpan {
    offset: 0,
    bytes: 0,
};

pub(crate) fn lower(
    model: &ImportedModel,
    batch_size: usize,
    precision: Precision,
) -> Result<Plan, PlanError> {
    if batch_size == 0 {
        return Err(PlanError::ZeroBatch);
    }
    let value = i64::try_from(batch_size).unwrap_or(i64::MAX);
    let subs = HashMap::from([(model.batch_symbol().clone(), TDim::Val(value))]);
    let fixed = model
        .decluttered()
        .set_symbols(&subs)
        .map_err(|e| PlanError::Tract(format!("fixing batch size {batch_size}: {e:#}")))?;
    let mut l = Lowerer {
        model: &fixed,
        precision,
        values: HashMap::new(),
        buffers: Vec::new(),
        steps: Vec::new(),
        weights: Vec::new(),
        absorbed: HashSet::new(),
        input_buffer: None,
    };
    let inputs = fixed.input_outlets().map_err(tract)?.to_vec();
    let outputs = fixed.output_outlets().map_err(tract)?.to_vec();
    if inputs.len() != 1 || outputs.len() != 1 {
        return Err(PlanError::Unsupported {
            node: fixed.nodes[inputs.first().map_or(0, |o| o.node)]
                .name
                .clone(),
            op: "Source".into(),
            reason: format!(
                "plans have one input and one output (this model: {} and {})",
                inputs.len(),
                outputs.len()
            ),
        });
    }
    let order = fixed.eval_order().map_err(tract)?;
    for id in order {
        if l.absorbed.contains(&id) {
            continue;
        }
        l.node(id)?;
    }
    l.finish(batch_size, inputs[0], outputs[0])
}

fn tract(e: TractError) -> PlanError {
    PlanError::Tract(format!("{e:#}"))
}

fn dims4(d: &[usize]) -> [usize; 4] {
    [d[0], d[1], d[2], d[3]]
}

impl Lowerer<'_> {
    fn unsupported(&self, id: usize, reason: impl Into<String>) -> PlanError {
        let node = &self.model.nodes[id];
        PlanError::Unsupported {
            node: node.name.clone(),
            op: node.op.name().to_string(),
            reason: reason.into(),
        }
    }

    fn dims(&self, outlet: OutletId) -> Result<Vec<usize>, PlanError> {
        let fact = self.model.outlet_fact(outlet).map_err(tract)?;
        fact.shape
            .as_concrete()
            .map(<[usize]>::to_vec)
            .ok_or_else(|| {
                self.unsupported(outlet.node, format!("shape {:?} is not fixed", fact.shape))
            })
    }

    fn new_buffer(&mut self, dims: &[usize]) -> usize {
        let elements: usize = dims.iter().product();
        self.buffers
            .push(elements as u64 * element_bytes(self.precision));
        self.buffers.len() - 1
    }

    fn set_act(&mut self, outlet: OutletId, dims: Vec<usize>, buffer: usize) {
        self.values.insert(outlet, Value::Act { dims, buffer });
    }

    /// An activation input: dims and buffer; a pending downsample is materialised.
    fn act(&mut self, id: usize, input: usize) -> Result<(Vec<usize>, usize), PlanError> {
        let outlet = self.model.nodes[id].inputs[input];
        match self.values.get(&outlet).cloned() {
            Some(Value::Act { dims, buffer }) => Ok((dims, buffer)),
            Some(Value::Strided {
                dims,
                buffer,
                source_dims,
                stride,
            }) => {
                let out = self.new_buffer(&dims);
                self.steps.push((
                    Step::Downsample {
                        dims: dims4(&source_dims),
                        stride,
                        input: NO_SPAN,
                        output: NO_SPAN,
                    },
                    vec![buffer],
                    out,
                ));
                self.set_act(outlet, dims.clone(), out);
                Ok((dims, out))
            }
            Some(Value::Const(_)) => Err(self.unsupported(id, "an activation input is a constant")),
            None => Err(self.unsupported(id, "an input is not computed by a supported node")),
        }
    }

    /// The constant at `outlet`, also when its node comes later in evaluation order
    /// (fusion looks ahead).
    fn konst(&self, outlet: OutletId) -> Option<Arc<Tensor>> {
        match self.values.get(&outlet) {
            Some(Value::Const(t)) => Some(Arc::clone(t)),
            Some(_) => None,
            None => {
                let node = &self.model.nodes[outlet.node];
                if !node.inputs.is_empty() {
                    return None;
                }
                self.model.outlet_fact(outlet).ok()?.konst.clone()
            }
        }
    }

    fn add_weight(
        &mut self,
        id: usize,
        source: Arc<Tensor>,
        dims: Vec<usize>,
        layout: WeightLayout,
    ) -> usize {
        let elements: usize = dims.iter().product();
        self.weights.push(Weight {
            name: self.model.nodes[id].name.clone(),
            dims,
            layout,
            bytes: elements as u64 * element_bytes(self.precision),
            source,
        });
        self.weights.len() - 1
    }

    /// The one node reading `id`'s output, when exactly one does and it is not a model
    /// output.
    fn sole_reader(&self, id: usize) -> Option<usize> {
        let outlet = OutletId::new(id, 0);
        let node = &self.model.nodes[id];
        if node.outputs.len() != 1
            || node.outputs[0].successors.len() != 1
            || self.model.outputs.contains(&outlet)
        {
            return None;
        }
        Some(node.outputs[0].successors[0].node)
    }

    /// `(binary op name, the other input)` of a binary node reading `from`.
    fn binary_with(&self, id: usize, from: usize) -> Option<(String, OutletId)> {
        let node = &self.model.nodes[id];
        let op = node.op_as::<TypedBinOp>()?;
        let other = node.inputs.iter().find(|o| o.node != from)?;
        Some((op.0.name().to_string(), *other))
    }

    /// A binary `op` (`Add`, `Mul`) on `from`'s output with a constant of one value per
    /// channel along `axis`.
    fn channel_const_reader(
        &self,
        from: usize,
        axis: usize,
        op: &str,
    ) -> Option<(usize, Arc<Tensor>)> {
        let reader = self.sole_reader(from)?;
        let (name, other) = self.binary_with(reader, from)?;
        let t = self.konst(other)?;
        let out = self.model.outlet_fact(OutletId::new(from, 0)).ok()?;
        let channels = out.shape.as_concrete()?.get(axis).copied()?;
        let shape = t.shape();
        let ok = name == op
            && t.len() == channels
            && shape
                .iter()
                .enumerate()
                .all(|(i, &d)| d == 1 || i + out.rank() - shape.len() == axis);
        ok.then_some((reader, t))
    }

    /// A ReLU (`Max` with a constant 0) reading only `from`'s output.
    fn relu_reader(&self, from: usize) -> Option<usize> {
        let reader = self.sole_reader(from)?;
        let (name, other) = self.binary_with(reader, from)?;
        (name == "Max" && self.konst(other).is_some_and(|t| is_zero_scalar(&t))).then_some(reader)
    }

    /// Fuse what follows node `id` into its step: a per-channel `Mul` by a constant
    /// (folded into the rows of `scaled_weight`, when given: a BatchNorm tract left
    /// unfolded), a bias add along channel `axis`, a ReLU. Returns the bias weight,
    /// whether ReLU is fused, and the last node whose output the step writes.
    fn fuse_epilogue(
        &mut self,
        id: usize,
        axis: usize,
        scaled_weight: Option<usize>,
    ) -> (Option<usize>, bool, usize) {
        let mut last = id;
        if let Some(w) = scaled_weight {
            if let Some((reader, scale)) = self.channel_const_reader(id, axis, "Mul") {
                if let Some(scaled) = scale_rows(&self.weights[w].source, &scale) {
                    self.weights[w].source = Arc::new(scaled);
                    self.absorbed.insert(reader);
                    last = reader;
                }
            }
        }
        let mut bias = None;
        if let Some((reader, t)) = self.channel_const_reader(last, axis, "Add") {
            let len = t.len();
            bias = Some(self.add_weight(reader, t, vec![len], WeightLayout::Vector));
            self.absorbed.insert(reader);
            last = reader;
        }
        let mut relu = false;
        if let Some(reader) = self.relu_reader(last) {
            self.absorbed.insert(reader);
            relu = true;
            last = reader;
        }
        (bias, relu, last)
    }

    fn node(&mut self, id: usize) -> Result<(), PlanError> {
        let node = &self.model.nodes[id];
        let out = OutletId::new(id, 0);
        if let Some(t) = self.model.outlet_fact(out).map_err(tract)?.konst.clone() {
            if node.inputs.is_empty() || node.op.name() == "Const" {
                self.values.insert(out, Value::Const(t));
                return Ok(());
            }
        }
        let name = node.op.name();
        if name == "Source" {
            let dims = self.dims(out)?;
            let staged = self.new_buffer(&dims);
            self.input_buffer = Some(staged);
            if dims.len() == 4 {
                let nhwc = self.new_buffer(&dims);
                self.steps.push((
                    Step::InputToNhwc {
                        input: NO_SPAN,
                        output: NO_SPAN,
                        dims: dims4(&dims),
                    },
                    vec![staged],
                    nhwc,
                ));
                self.set_act(out, dims, nhwc);
            } else {
                self.set_act(out, dims, staged);
            }
            return Ok(());
        }
        if let Some(conv) = node.op_as::<Conv>() {
            return self.conv(id, conv.clone());
        }
        if let Some(einsum) = node.op_as::<EinSum>() {
            return self.einsum(id, einsum.clone());
        }
        if let Some(pool) = node.op_as::<MaxPool>() {
            if pool.with_index_outputs.is_some() {
                return Err(self.unsupported(id, "max pooling with index outputs"));
            }
            return self.pool(id, PoolKind::Max, &pool.pool_spec.clone(), false);
        }
        if let Some(pool) = node.op_as::<SumPool>() {
            if !pool.normalize {
                return Err(self.unsupported(id, "sum pooling without normalisation"));
            }
            return self.pool(
                id,
                PoolKind::Average,
                &pool.pool_spec.clone(),
                pool.count_include_pad,
            );
        }
        if let Some(reduce) = node.op_as::<Reduce>() {
            return self.reduce(id, reduce.clone());
        }
        if let Some(down) = node.op_as::<Downsample>() {
            return self.downsample(id, down.clone());
        }
        if node.op_as::<TypedBinOp>().is_some() {
            return self.binary(id);
        }
        if let Some(axis_op) = node.op_as::<AxisOp>() {
            return self.reshape(id, &format!("{axis_op:?}"));
        }
        if name == "Identity" {
            let (dims, buffer) = self.act(id, 0)?;
            self.set_act(out, dims, buffer);
            return Ok(());
        }
        Err(self.unsupported(id, "no step kind for this op"))
    }

    fn conv(&mut self, id: usize, conv: Conv) -> Result<(), PlanError> {
        let spec = &conv.pool_spec;
        if spec.data_format != DataFormat::NCHW
            || conv.kernel_fmt != KernelFormat::OIHW
            || spec.rank() != 2
            || conv.q_params.is_some()
        {
            return Err(self.unsupported(id, "only 2-D NCHW float convolutions with OIHW filters"));
        }
        let node = &self.model.nodes[id];
        let (kernel, bias_in) = (node.inputs[1], node.inputs[2]);
        let (Some(kernel), Some(bias)) = (self.konst(kernel), self.konst(bias_in)) else {
            return Err(self.unsupported(id, "the filter and bias must be constants"));
        };
        let (in_dims, buffer, stride_in) = self.conv_input(id)?;
        let padded_input = !matches!(spec.padding, PaddingSpec::Valid)
            && spec
                .computed_padding(&in_dims[2..])
                .iter()
                .any(|p| p.pad_before != 0 || p.pad_after != 0);
        if stride_in != [1, 1] && (padded_input || spec.kernel_shape.iter().any(|&k| k != 1)) {
            return Err(
                self.unsupported(id, "a downsampled input to a convolution larger than 1x1")
            );
        }
        let [n, c, h, w] = dims4(&in_dims);
        let padded = spec.computed_padding(&[h, w]);
        let out_dims = self.dims(OutletId::new(id, 0))?;
        let kd = kernel.shape().to_vec();
        let geometry = ConvGeometry {
            n,
            c,
            h,
            w,
            k: out_dims[1],
            r: spec.kernel_shape[0],
            s: spec.kernel_shape[1],
            p: out_dims[2],
            q: out_dims[3],
            stride: [spec.stride(0) * stride_in[0], spec.stride(1) * stride_in[1]],
            pad: [padded[0].pad_before, padded[1].pad_before],
            dilation: [spec.dilation(0), spec.dilation(1)],
            groups: conv.group,
        };
        let weight = self.add_weight(
            id,
            kernel,
            vec![kd[0], kd[2], kd[3], kd[1]],
            WeightLayout::Krsc,
        );
        let own_bias = if is_zero_scalar(&bias)
            || bias
                .as_plain_ram()
                .and_then(|v| {
                    v.as_slice::<f32>()
                        .ok()
                        .map(|b| b.iter().all(|&x| x == 0.0))
                })
                .unwrap_or(false)
        {
            None
        } else if bias.len() == geometry.k {
            let len = bias.len();
            Some(self.add_weight(id, bias, vec![len], WeightLayout::Vector))
        } else {
            return Err(self.unsupported(id, "a bias that is neither per-channel nor zero"));
        };
        self.emit_conv(id, geometry, weight, own_bias, buffer)
    }

    /// The convolution input of node `id`: dims before any pending downsample, buffer,
    /// and the pending stride.
    fn conv_input(&mut self, id: usize) -> Result<(Vec<usize>, usize, [usize; 2]), PlanError> {
        let outlet = self.model.nodes[id].inputs[0];
        if let Some(Value::Strided {
            buffer,
            source_dims,
            stride,
            ..
        }) = self.values.get(&outlet).cloned()
        {
            let readers = self.model.nodes[outlet.node].outputs[0].successors.len();
            if readers == 1 {
                return Ok((source_dims, buffer, stride));
            }
        }
        let (dims, buffer) = self.act(id, 0)?;
        if dims.len() != 4 {
            return Err(self.unsupported(id, "a convolution input that is not 4-D"));
        }
        Ok((dims, buffer, [1, 1]))
    }

    fn emit_conv(
        &mut self,
        id: usize,
        geometry: ConvGeometry,
        weight: usize,
        own_bias: Option<usize>,
        input: usize,
    ) -> Result<(), PlanError> {
        let (fused_bias, relu, last) =
            self.fuse_epilogue(id, 1, own_bias.is_none().then_some(weight));
        let bias = match (own_bias, fused_bias) {
            (Some(_), Some(_)) => {
                return Err(self.unsupported(id, "a convolution with two biases"));
            }
            (a, b) => a.or(b),
        };
        let out_dims = vec![geometry.n, geometry.k, geometry.p, geometry.q];
        let out = self.new_buffer(&out_dims);
        self.steps.push((
            Step::Conv {
                geometry,
                weight,
                bias,
                relu,
                input: NO_SPAN,
                output: NO_SPAN,
            },
            vec![input],
            out,
        ));
        self.set_act(OutletId::new(last, 0), out_dims, out);
        Ok(())
    }

    fn einsum(&mut self, id: usize, op: EinSum) -> Result<(), PlanError> {
        let node = &self.model.nodes[id];
        if node.inputs.len() != 2 || op.q_params.is_some() || op.operating_dt != f32::datum_type() {
            return Err(self.unsupported(id, "only float EinSums of an activation and a constant"));
        }
        let (ins, outs) = op.axes.to_strs();
        let (act_slot, weight) = match (self.konst(node.inputs[0]), self.konst(node.inputs[1])) {
            (None, Some(w)) => (0, w),
            (Some(w), None) => (1, w),
            _ => return Err(self.unsupported(id, "only EinSums of an activation and a constant")),
        };
        let a: Vec<char> = ins[act_slot].chars().collect();
        let b: Vec<char> = ins[1 - act_slot].chars().collect();
        let o: Vec<char> = outs[0].chars().collect();
        let wd = weight.shape().to_vec();
        if a.len() == 4 && b.len() == 2 && o.len() == 4 {
            // A 1x1 convolution in NCHW: a = [n, i, h, w], b = [o, i], o = [n, o, h, w].
            if !(a[0] == o[0] && a[2] == o[2] && a[3] == o[3] && b == [o[1], a[1]]) {
                return Err(self.unsupported(
                    id,
                    format!("EinSum {ins:?} -> {outs:?} is not a 1x1 convolution"),
                ));
            }
            let (in_dims, buffer, stride) = self.conv_input(id)?;
            let out_dims = self.dims(OutletId::new(id, 0))?;
            let geometry = ConvGeometry {
                n: in_dims[0],
                c: in_dims[1],
                h: in_dims[2],
                w: in_dims[3],
                k: out_dims[1],
                r: 1,
                s: 1,
                p: out_dims[2],
                q: out_dims[3],
                stride,
                pad: [0, 0],
                dilation: [1, 1],
                groups: 1,
            };
            let w = self.add_weight(id, weight, vec![wd[0], 1, 1, wd[1]], WeightLayout::Krsc);
            return self.emit_conv(id, geometry, w, None, buffer);
        }
        if (a.len() == 2 || a.len() == 4) && o.len() == 2 && a[0] == o[0] && !a[1..].contains(&o[1])
        {
            // A GEMM: a = [m, rest..] (rest flattened into k), o = [m, n], b = [n, rest..]
            // or [rest.., n]. A 4-D activation is NHWC on the device: its weight's
            // columns are permuted to (h, w, c) order at load.
            // Unit axes of the activation that the weight does not name (a pooled
            // `[m, c, 1, 1]`) drop out.
            let act_dims = self.dims(node.inputs[act_slot])?;
            let rest: Vec<char> = a[1..]
                .iter()
                .zip(&act_dims[1..])
                .filter(|&(axis, &d)| d != 1 || b.contains(axis))
                .map(|(axis, _)| *axis)
                .collect();
            let rest = &rest[..];
            let transposed = if b.len() == rest.len() + 1 && b[0] == o[1] && &b[1..] == rest {
                true
            } else if b.len() == rest.len() + 1 && b[rest.len()] == o[1] && &b[..rest.len()] == rest
            {
                false
            } else {
                return Err(self.unsupported(
                    id,
                    format!("EinSum {ins:?} -> {outs:?} is not a matrix product"),
                ));
            };
            let (in_dims, buffer) = self.act(id, act_slot)?;
            let image = in_dims.len() == 4 && in_dims[2] * in_dims[3] > 1;
            if image && !transposed {
                return Err(
                    self.unsupported(id, "a flattened NHWC activation times a k x n weight")
                );
            }
            let out_dims = self.dims(OutletId::new(id, 0))?;
            let k: usize = in_dims[1..].iter().product();
            let n = out_dims[1];
            let (dims, layout) = if image {
                (
                    vec![n, in_dims[2], in_dims[3], in_dims[1]],
                    WeightLayout::MatrixNhwc,
                )
            } else if transposed {
                (vec![n, k], WeightLayout::Matrix)
            } else {
                (vec![k, n], WeightLayout::Matrix)
            };
            let w = self.add_weight(id, weight, dims, layout);
            let (bias, relu, last) = self.fuse_epilogue(id, 1, None);
            let out = self.new_buffer(&out_dims);
            self.steps.push((
                Step::Gemm {
                    m: in_dims[0],
                    n,
                    k,
                    weight_transposed: transposed,
                    weight: w,
                    epilogue: Epilogue { bias, relu },
                    input: NO_SPAN,
                    output: NO_SPAN,
                },
                vec![buffer],
                out,
            ));
            self.set_act(OutletId::new(last, 0), out_dims, out);
            return Ok(());
        }
        Err(self.unsupported(
            id,
            format!("EinSum {ins:?} -> {outs:?} is neither a 1x1 convolution nor a matrix product"),
        ))
    }

    fn pool(
        &mut self,
        id: usize,
        kind: PoolKind,
        spec: &tract_onnx::tract_core::ops::cnn::PoolSpec,
        count_include_pad: bool,
    ) -> Result<(), PlanError> {
        if spec.data_format != DataFormat::NCHW
            || spec.rank() != 2
            || spec.dilations().iter().any(|&d| d != 1)
        {
            return Err(self.unsupported(id, "only undilated 2-D NCHW pooling"));
        }
        let (dims, buffer) = self.act(id, 0)?;
        let [n, c, h, w] = dims4(&dims);
        let padded = spec.computed_padding(&[h, w]);
        let pad = [padded[0].pad_before, padded[1].pad_before];
        if count_include_pad && pad != [0, 0] {
            return Err(self.unsupported(id, "average pooling that counts padding"));
        }
        if matches!(spec.padding, PaddingSpec::ExplicitOnnxPool(_, _, true)) {
            return Err(self.unsupported(id, "ceil-mode pooling"));
        }
        let out_dims = self.dims(OutletId::new(id, 0))?;
        let geometry = PoolGeometry {
            n,
            c,
            h,
            w,
            window: [spec.kernel_shape[0], spec.kernel_shape[1]],
            stride: [spec.stride(0), spec.stride(1)],
            pad,
            p: out_dims[2],
            q: out_dims[3],
        };
        self.emit_pool(id, kind, geometry, buffer, out_dims, id)
    }

    fn emit_pool(
        &mut self,
        _id: usize,
        kind: PoolKind,
        geometry: PoolGeometry,
        input: usize,
        out_dims: Vec<usize>,
        last: usize,
    ) -> Result<(), PlanError> {
        let out = self.new_buffer(&out_dims);
        self.steps.push((
            Step::Pool {
                kind,
                geometry,
                input: NO_SPAN,
                output: NO_SPAN,
            },
            vec![input],
            out,
        ));
        self.set_act(OutletId::new(last, 0), out_dims, out);
        Ok(())
    }

    /// `Reduce<Sum>` over H and W (a global average pool's first half): an average
    /// pool over the whole image, with the following `Mul` by `1 / (h * w)` absorbed.
    fn reduce(&mut self, id: usize, op: Reduce) -> Result<(), PlanError> {
        let (dims, buffer) = self.act(id, 0)?;
        let mut axes = op.axes.to_vec();
        axes.sort_unstable();
        if !matches!(op.reducer, Reducer::Sum) || dims.len() != 4 || axes != [2, 3] {
            return Err(self.unsupported(id, "only sums over H and W of a 4-D activation"));
        }
        let [n, c, h, w] = dims4(&dims);
        let geometry = PoolGeometry {
            n,
            c,
            h,
            w,
            window: [h, w],
            stride: [h, w],
            pad: [0, 0],
            p: 1,
            q: 1,
        };
        let area = (h * w) as f32;
        let mut last = id;
        let mut scale = None;
        if let Some(reader) = self.sole_reader(id) {
            if let Some((name, other)) = self.binary_with(reader, id) {
                if let Some(t) = self.konst(other).filter(|t| t.len() == 1) {
                    let v = t.cast_to_scalar::<f32>().unwrap_or(f32::NAN);
                    let factor = match name.as_str() {
                        "Mul" => Some(v * area),
                        "Div" => Some(area / v),
                        _ => None,
                    };
                    if let Some(f) = factor {
                        self.absorbed.insert(reader);
                        last = reader;
                        scale = Some(f);
                    }
                }
            }
        }
        let out_dims = vec![n, c, 1, 1];
        // sum = mean * area: without a following scale the step scales by the area.
        let scale = scale.unwrap_or(area);
        self.emit_pool(
            id,
            PoolKind::Average,
            geometry,
            buffer,
            out_dims.clone(),
            last,
        )?;
        if (scale - 1.0).abs() > 1e-6 {
            let (_, pooled) = match self.values.get(&OutletId::new(last, 0)) {
                Some(Value::Act { dims, buffer }) => (dims.clone(), *buffer),
                _ => return Err(self.unsupported(id, "internal: pooled value missing")),
            };
            let out = self.new_buffer(&out_dims);
            self.steps.push((
                Step::Elementwise {
                    op: ElementwiseOp::Scale(scale),
                    elements: n * c,
                    inputs: vec![],
                    output: NO_SPAN,
                },
                vec![pooled],
                out,
            ));
            self.set_act(OutletId::new(last, 0), out_dims, out);
        }
        Ok(())
    }

    fn downsample(&mut self, id: usize, op: Downsample) -> Result<(), PlanError> {
        let outlet = self.model.nodes[id].inputs[0];
        let (source_dims, buffer, mut stride) = match self.values.get(&outlet).cloned() {
            Some(Value::Act { dims, buffer }) => (dims, buffer, [1, 1]),
            Some(Value::Strided {
                source_dims,
                buffer,
                stride,
                ..
            }) if self.model.nodes[outlet.node].outputs[0].successors.len() == 1 => {
                (source_dims, buffer, stride)
            }
            _ => {
                let (dims, buffer) = self.act(id, 0)?;
                (dims, buffer, [1, 1])
            }
        };
        let s = usize::try_from(op.stride).unwrap_or(0);
        if source_dims.len() != 4 || !(2..=3).contains(&op.axis) || op.modulo != 0 || s == 0 {
            return Err(self.unsupported(id, "only positive strides on H or W of a 4-D activation"));
        }
        stride[op.axis - 2] *= s;
        let dims = self.dims(OutletId::new(id, 0))?;
        self.values.insert(
            OutletId::new(id, 0),
            Value::Strided {
                dims,
                buffer,
                source_dims,
                stride,
            },
        );
        Ok(())
    }

    fn binary(&mut self, id: usize) -> Result<(), PlanError> {
        let node = &self.model.nodes[id];
        let name = node.op.name().to_string();
        let (i0, i1) = (node.inputs[0], node.inputs[1]);
        let out_dims = self.dims(OutletId::new(id, 0))?;
        let elements: usize = out_dims.iter().product();
        let (op, inputs, last) = match (self.konst(i0), self.konst(i1)) {
            (None, None) => {
                let (d0, b0) = self.act(id, 0)?;
                let (d1, b1) = self.act(id, 1)?;
                if name != "Add" || d0 != d1 {
                    return Err(
                        self.unsupported(id, "only Add of two activations of the same shape")
                    );
                }
                match self.relu_reader(id) {
                    Some(relu) => {
                        self.absorbed.insert(relu);
                        (ElementwiseOp::AddRelu, vec![b0, b1], relu)
                    }
                    None => (ElementwiseOp::Add, vec![b0, b1], id),
                }
            }
            (c0, c1) => {
                let (slot, t) = match (c0, c1) {
                    (None, Some(t)) => (0, t),
                    (Some(t), None) => (1, t),
                    _ => return Err(self.unsupported(id, "both inputs are constants")),
                };
                let (dims, buffer) = self.act(id, slot)?;
                let op = match name.as_str() {
                    "Max" if is_zero_scalar(&t) => ElementwiseOp::Relu,
                    "Mul" if t.len() == 1 => {
                        ElementwiseOp::Scale(t.cast_to_scalar::<f32>().map_err(tract)?)
                    }
                    "Add"
                        if t.len() == dims.get(1).copied().unwrap_or(0)
                            && t.len() == t.shape().iter().product::<usize>() =>
                    {
                        let len = t.len();
                        ElementwiseOp::Bias(self.add_weight(id, t, vec![len], WeightLayout::Vector))
                    }
                    _ => {
                        return Err(self.unsupported(
                            id,
                            "only ReLU, scaling and per-channel bias with a constant",
                        ))
                    }
                };
                (op, vec![buffer], id)
            }
        };
        let out = self.new_buffer(&out_dims);
        self.steps.push((
            Step::Elementwise {
                op,
                elements,
                inputs: vec![],
                output: NO_SPAN,
            },
            inputs,
            out,
        ));
        self.set_act(OutletId::new(last, 0), out_dims, out);
        Ok(())
    }

    fn reshape(&mut self, id: usize, op: &str) -> Result<(), PlanError> {
        let (in_dims, buffer) = self.act(id, 0)?;
        let out_dims = self.dims(OutletId::new(id, 0))?;
        let in_image = in_dims.len() == 4 && in_dims[2] * in_dims[3] > 1;
        let out_image = out_dims.len() == 4 && out_dims[2] * out_dims[3] > 1;
        let elements: usize = out_dims.iter().product();
        let same_order = in_dims
            .iter()
            .filter(|&&d| d != 1)
            .eq(out_dims.iter().filter(|&&d| d != 1));
        if !in_image && !out_image && same_order {
            // NHWC and NCHW coincide when H*W == 1: the bytes stay.
            self.steps.push((
                Step::View {
                    op: op.to_owned(),
                    input: NO_SPAN,
                    output: NO_SPAN,
                },
                vec![buffer],
                buffer,
            ));
            self.set_act(OutletId::new(id, 0), out_dims, buffer);
            return Ok(());
        }
        if in_image
            && out_dims.len() == 2
            && out_dims[0] == in_dims[0]
            && elements == in_dims.iter().product::<usize>()
        {
            let out = self.new_buffer(&out_dims);
            self.steps.push((
                Step::FlattenNhwc {
                    dims: dims4(&in_dims),
                    input: NO_SPAN,
                    output: NO_SPAN,
                },
                vec![buffer],
                out,
            ));
            self.set_act(OutletId::new(id, 0), out_dims, out);
            return Ok(());
        }
        Err(self.unsupported(
            id,
            format!("reshape {in_dims:?} -> {out_dims:?} of an NHWC activation"),
        ))
    }

    fn finish(
        self,
        batch_size: usize,
        input: OutletId,
        output: OutletId,
    ) -> Result<Plan, PlanError> {
        let Some(Value::Act {
            buffer: out_buf,
            dims: out_dims,
        }) = self.values.get(&output).cloned()
        else {
            return Err(self.unsupported(output.node, "the model output is not computed by a step"));
        };
        if out_dims.len() == 4 && out_dims[2] * out_dims[3] > 1 {
            return Err(self.unsupported(
                output.node,
                "an image output (NHWC back to NCHW is not planned)",
            ));
        }
        let Some(in_buf) = self.input_buffer else {
            return Err(self.unsupported(input.node, "the model input is not a source"));
        };
        let end = self.steps.len();
        let mut life: Vec<Lifetime> = self
            .buffers
            .iter()
            .map(|&bytes| Lifetime {
                bytes,
                first: usize::MAX,
                last: 0,
            })
            .collect();
        life[in_buf].first = 0;
        for (i, (_, ins, out)) in self.steps.iter().enumerate() {
            life[*out].first = life[*out].first.min(i);
            life[*out].last = life[*out].last.max(i);
            for &b in ins {
                life[b].last = life[b].last.max(i);
                life[b].first = life[b].first.min(i);
            }
        }
        life[out_buf].first = life[out_buf].first.min(end);
        life[out_buf].last = end;
        let (spans, arena_bytes) = arena::place(&life);
        let activation_bytes = self.buffers.iter().map(|&b| arena::align_up(b)).sum();
        let steps = self
            .steps
            .into_iter()
            .map(|(mut step, ins, out)| {
                let ins: Vec<ArenaSpan> = ins.iter().map(|&b| spans[b]).collect();
                set_spans(&mut step, &ins, spans[out]);
                step
            })
            .collect();
        Ok(Plan {
            batch_size,
            precision: self.precision,
            steps,
            arena_bytes,
            activation_bytes,
            input: spans[in_buf],
            output: spans[out_buf],
            weights: self.weights,
        })
    }
}

fn is_zero_scalar(t: &Tensor) -> bool {
    t.len() == 1 && t.cast_to_scalar::<f32>().is_ok_and(|v| v == 0.0)
}

/// `weight` (first axis = output channels) with row `o` multiplied by `scale[o]`.
fn scale_rows(weight: &Tensor, scale: &Tensor) -> Option<Tensor> {
    let view = scale.as_plain_ram()?;
    let scale = view.as_slice::<f32>().ok()?;
    let rows = weight.shape().first().copied()?;
    if rows != scale.len() || rows == 0 {
        return None;
    }
    let mut scaled = weight.clone();
    let mut view = scaled.as_plain_ram_mut()?;
    let values = view.as_slice_mut::<f32>().ok()?;
    let per_row = values.len() / rows;
    for (row, s) in values.chunks_mut(per_row).zip(scale) {
        row.iter_mut().for_each(|v| *v *= s);
    }
    Some(scaled)
}
