//! A CPU reference interpreter for plans: runs a [`Plan`]'s steps with plain loops
//! (naive convolution, GEMM and pooling) over an `f32` arena laid out exactly as the
//! device's, so that the plan's geometry, fusion, layouts and arena reuse can be checked
//! against tract before any GPU runs it. Slow by design; for tests and debugging.

use super::{element_bytes, ArenaSpan, ElementwiseOp, Plan, PoolKind, Step, Weight, WeightLayout};

/// Why the interpreter could not run a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input holds the wrong number of values.
    #[error("the input holds {got} values, the plan takes {want}")]
    InputLength {
        /// Values given.
        got: usize,
        /// Values the plan's input span holds.
        want: usize,
    },
    /// A weight's values could not be read as `f32`.
    #[error("weight `{0}` is not readable as f32")]
    Weight(String),
}

/// A weight's values in its device layout (see [`WeightLayout`]), as `f32`.
pub fn device_values(weight: &Weight) -> Result<Vec<f32>, ReferenceError> {
    let bad = || ReferenceError::Weight(weight.name.clone());
    let view = weight.source.as_plain_ram().ok_or_else(bad)?;
    let src = view.as_slice::<f32>().map_err(|_| bad())?;
    let d = &weight.dims;
    Ok(match weight.layout {
        WeightLayout::Matrix | WeightLayout::Vector => src.to_vec(),
        // Source OIHW (or O x I for a 1x1 EinSum, r = s = 1) -> KRSC; and [n, c, h, w]
        // -> [n, h, w, c]: the same permutation.
        WeightLayout::Krsc | WeightLayout::MatrixNhwc => {
            let (k, r, s, c) = (d[0], d[1], d[2], d[3]);
            if src.len() != k * r * s * c {
                return Err(bad());
            }
            let mut out = vec![0.0; src.len()];
            for ko in 0..k {
                for ci in 0..c {
                    for y in 0..r {
                        for x in 0..s {
                            out[((ko * r + y) * s + x) * c + ci] =
                                src[((ko * c + ci) * r + y) * s + x];
                        }
                    }
                }
            }
            out
        }
    })
}

/// Run `plan` on `input` (NCHW, the model input's values) and return the output values.
pub fn run(plan: &Plan, input: &[f32]) -> Result<Vec<f32>, ReferenceError> {
    let eb = element_bytes(plan.precision) as usize;
    let at = |s: ArenaSpan| (s.offset as usize / eb, s.bytes as usize / eb);
    let (in_at, in_len) = at(plan.input);
    if input.len() != in_len {
        return Err(ReferenceError::InputLength {
            got: input.len(),
            want: in_len,
        });
    }
    let weights = plan
        .weights
        .iter()
        .map(device_values)
        .collect::<Result<Vec<_>, _>>()?;
    let mut arena = vec![f32::NAN; plan.arena_bytes as usize / eb];
    arena[in_at..in_at + in_len].copy_from_slice(input);
    for step in &plan.steps {
        let ins: Vec<Vec<f32>> = step
            .inputs()
            .iter()
            .map(|&s| {
                let (o, n) = at(s);
                arena[o..o + n].to_vec()
            })
            .collect();
        let (out_at, out_len) = at(step.output());
        let out = &mut arena[out_at..out_at + out_len];
        execute(step, &ins, &weights, out);
    }
    let (o, n) = at(plan.output);
    Ok(arena[o..o + n].to_vec())
}

fn execute(step: &Step, ins: &[Vec<f32>], weights: &[Vec<f32>], out: &mut [f32]) {
    let x = &ins[0];
    match step {
        Step::InputToNhwc {
            dims: [n, c, h, w], ..
        } => {
            for b in 0..*n {
                for ch in 0..*c {
                    for y in 0..*h {
                        for xx in 0..*w {
                            out[((b * h + y) * w + xx) * c + ch] =
                                x[((b * c + ch) * h + y) * w + xx];
                        }
                    }
                }
            }
        }
        Step::Conv {
            geometry: g,
            weight,
            bias,
            relu,
            ..
        } => {
            let f = &weights[*weight];
            let (cg, kg) = (g.c / g.groups, g.k / g.groups);
            for b in 0..g.n {
                for p in 0..g.p {
                    for q in 0..g.q {
                        for k in 0..g.k {
                            let c0 = (k / kg) * cg;
                            let mut acc = bias.map_or(0.0, |i| weights[i][k]);
                            for r in 0..g.r {
                                let Some(y) =
                                    (p * g.stride[0] + r * g.dilation[0]).checked_sub(g.pad[0])
                                else {
                                    continue;
                                };
                                if y >= g.h {
                                    continue;
                                }
                                for s in 0..g.s {
                                    let Some(xx) =
                                        (q * g.stride[1] + s * g.dilation[1]).checked_sub(g.pad[1])
                                    else {
                                        continue;
                                    };
                                    if xx >= g.w {
                                        continue;
                                    }
                                    let xi = ((b * g.h + y) * g.w + xx) * g.c + c0;
                                    let fi = ((k * g.r + r) * g.s + s) * cg;
                                    for ci in 0..cg {
                                        acc += x[xi + ci] * f[fi + ci];
                                    }
                                }
                            }
                            out[((b * g.p + p) * g.q + q) * g.k + k] =
                                if *relu { acc.max(0.0) } else { acc };
                        }
                    }
                }
            }
        }
        Step::Gemm {
            m,
            n,
            k,
            weight_transposed,
            weight,
            epilogue,
            ..
        } => {
            let w = &weights[*weight];
            for i in 0..*m {
                for j in 0..*n {
                    let mut acc = epilogue.bias.map_or(0.0, |b| weights[b][j]);
                    for l in 0..*k {
                        let wv = if *weight_transposed {
                            w[j * k + l]
                        } else {
                            w[l * n + j]
                        };
                        acc += x[i * k + l] * wv;
                    }
                    out[i * n + j] = if epilogue.relu { acc.max(0.0) } else { acc };
                }
            }
        }
        Step::Pool {
            kind, geometry: g, ..
        } => {
            for b in 0..g.n {
                for p in 0..g.p {
                    for q in 0..g.q {
                        for c in 0..g.c {
                            let (mut max, mut sum, mut count) = (f32::NEG_INFINITY, 0.0, 0u32);
                            for r in 0..g.window[0] {
                                let Some(y) = (p * g.stride[0] + r).checked_sub(g.pad[0]) else {
                                    continue;
                                };
                                for s in 0..g.window[1] {
                                    let Some(xx) = (q * g.stride[1] + s).checked_sub(g.pad[1])
                                    else {
                                        continue;
                                    };
                                    if y >= g.h || xx >= g.w {
                                        continue;
                                    }
                                    let v = x[((b * g.h + y) * g.w + xx) * g.c + c];
                                    max = max.max(v);
                                    sum += v;
                                    count += 1;
                                }
                            }
                            out[((b * g.p + p) * g.q + q) * g.c + c] = match kind {
                                PoolKind::Max => max,
                                PoolKind::Average => sum / count.max(1) as f32,
                            };
                        }
                    }
                }
            }
        }
        Step::Elementwise { op, .. } => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = match op {
                    ElementwiseOp::Relu => x[i].max(0.0),
                    ElementwiseOp::Add => x[i] + ins[1][i],
                    ElementwiseOp::AddRelu => (x[i] + ins[1][i]).max(0.0),
                    ElementwiseOp::Scale(f) => x[i] * f,
                    ElementwiseOp::Bias(b) => {
                        let bias = &weights[*b];
                        x[i] + bias[i % bias.len()]
                    }
                };
            }
        }
        Step::FlattenNhwc {
            dims: [n, c, h, w], ..
        } => {
            for b in 0..*n {
                for ch in 0..*c {
                    for y in 0..*h {
                        for xx in 0..*w {
                            out[b * c * h * w + (ch * h + y) * w + xx] =
                                x[((b * h + y) * w + xx) * c + ch];
                        }
                    }
                }
            }
        }
        Step::Downsample {
            dims: [n, c, h, w],
            stride: [sh, sw],
            ..
        } => {
            let (p, q) = (h.div_ceil(*sh), w.div_ceil(*sw));
            for b in 0..*n {
                for y in 0..p {
                    for xx in 0..q {
                        for ch in 0..*c {
                            out[((b * p + y) * q + xx) * c + ch] =
                                x[((b * h + y * sh) * w + xx * sw) * c + ch];
                        }
                    }
                }
            }
        }
        Step::View { .. } => {}
    }
}
