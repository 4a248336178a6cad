//! A plan's steps as the launches the executor records into a CUDA graph: each step
//! checked and translated (cuDNN convolution or pooling descriptors, a cuBLASLt matmul,
//! or one of our kernels with its grid and arguments), views dropped. Pure: no library
//! call, so CI tests every derivation and refusal. It does not own the descriptors'
//! creation or the launches themselves (`device.rs`, feature `cuda`).

use super::descriptors::{conv_desc, matmul_desc, pool_desc, ConvDesc, MatmulDesc, PoolDesc};
use super::error::ExecError;
use super::kernels::{launch, Kernel, KernelArg, KernelLaunch, Operand};
use crate::cuda_plan::{element_bytes, ArenaSpan, ElementwiseOp, Plan, Step};

/// One launch of the recorded sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// A cuDNN convolution (with its fused bias and ReLU).
    Conv {
        /// Index of the step in the plan.
        step: usize,
        /// The descriptors' contents.
        desc: ConvDesc,
        /// The filter.
        weight: usize,
        /// The bias.
        bias: Option<usize>,
        /// Input, arena offset.
        x: u64,
        /// Output, arena offset.
        y: u64,
    },
    /// A cuBLASLt matmul (with its bias/ReLU epilogue).
    Matmul {
        /// Index of the step in the plan.
        step: usize,
        /// The descriptors' contents.
        desc: MatmulDesc,
        /// The weight (`A`).
        weight: usize,
        /// The epilogue's bias.
        bias: Option<usize>,
        /// Input (`B`), arena offset.
        x: u64,
        /// Output (`D`), arena offset.
        y: u64,
    },
    /// A cuDNN pooling.
    Pool {
        /// Index of the step in the plan.
        step: usize,
        /// The descriptors' contents.
        desc: PoolDesc,
        /// Input, arena offset.
        x: u64,
        /// Output, arena offset.
        y: u64,
    },
    /// One of our kernels.
    Kernel {
        /// Index of the step in the plan.
        step: usize,
        /// The launch.
        launch: KernelLaunch,
    },
}

/// A plan's launches.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// In launch order.
    pub launches: Vec<Launch>,
}

impl Schedule {
    /// Translate every step of `plan`, or refuse the first one the executor cannot run.
    pub fn build(plan: &Plan) -> Result<Self, ExecError> {
        let eb = element_bytes(plan.precision);
        let mut launches = Vec::with_capacity(plan.steps.len());
        for (index, step) in plan.steps.iter().enumerate() {
            let refuse = |reason: String| ExecError::Unsupported {
                index,
                kind: step.kind(),
                reason,
            };
            // Every span read or written holds what the launch touches.
            let fits = |span: ArenaSpan, elements: usize, what: &str| {
                let need = elements as u64 * eb;
                if span.bytes < need || span.offset + span.bytes > plan.arena_bytes {
                    Err(refuse(format!(
                        "its {what} span ({} bytes at {}) does not hold {elements} elements \
                         inside the {}-byte arena",
                        span.bytes, span.offset, plan.arena_bytes
                    )))
                } else {
                    Ok(span.offset)
                }
            };
            let weight = |i: usize, elements: usize| match plan.weights.get(i) {
                Some(w) if w.bytes == elements as u64 * eb => Ok(i),
                Some(w) => Err(refuse(format!(
                    "weight {i} ({}) has {} bytes, the step reads {elements} elements",
                    w.name, w.bytes
                ))),
                None => Err(refuse(format!("weight {i} is not in the plan"))),
            };
            let kernel = |k: Kernel, n: usize, args: Vec<KernelArg>| {
                launch(k, n as u64, args).map(|launch| Launch::Kernel {
                    step: index,
                    launch,
                })
            };
            use KernelArg::{Ptr, F32, U64};
            let arena = |o: u64| Ptr(Operand::Arena(o));
            let next = match step {
                Step::View { .. } => continue,
                Step::Conv {
                    geometry: g,
                    weight: w,
                    bias,
                    relu,
                    input,
                    output,
                } => {
                    let desc = conv_desc(g, bias.is_some(), *relu).map_err(refuse)?;
                    Launch::Conv {
                        step: index,
                        weight: weight(*w, g.k * g.r * g.s * (g.c / g.groups.max(1)))?,
                        bias: bias.map(|b| weight(b, g.k)).transpose()?,
                        x: fits(*input, g.n * g.c * g.h * g.w, "input")?,
                        y: fits(*output, g.n * g.k * g.p * g.q, "output")?,
                        desc,
                    }
                }
                Step::Gemm {
                    m,
                    n,
                    k,
                    weight_transposed,
                    weight: w,
                    epilogue,
                    input,
                    output,
                } => {
                    let desc = matmul_desc(
                        *m,
                        *n,
                        *k,
                        *weight_transposed,
                        epilogue.bias.is_some(),
                        epilogue.relu,
                    )
                    .map_err(refuse)?;
                    Launch::Matmul {
                        step: index,
                        weight: weight(*w, k * n)?,
                        bias: epilogue.bias.map(|b| weight(b, *n)).transpose()?,
                        x: fits(*input, m * k, "input")?,
                        y: fits(*output, m * n, "output")?,
                        desc,
                    }
                }
                Step::Pool {
                    kind,
                    geometry: g,
                    input,
                    output,
                } => Launch::Pool {
                    step: index,
                    desc: pool_desc(*kind, g).map_err(refuse)?,
                    x: fits(*input, g.n * g.c * g.h * g.w, "input")?,
                    y: fits(*output, g.n * g.c * g.p * g.q, "output")?,
                },
                Step::InputToNhwc {
                    input,
                    output,
                    dims: [n, c, h, w],
                }
                | Step::FlattenNhwc {
                    input,
                    output,
                    dims: [n, c, h, w],
                } => {
                    let e = n * c * h * w;
                    let k = if matches!(step, Step::InputToNhwc { .. }) {
                        Kernel::NchwToNhwc
                    } else {
                        Kernel::NhwcToNchw
                    };
                    let (x, y) = (fits(*input, e, "input")?, fits(*output, e, "output")?);
                    kernel(
                        k,
                        e,
                        vec![
                            arena(x),
                            arena(y),
                            U64(e as u64),
                            U64(*c as u64),
                            U64((h * w) as u64),
                        ],
                    )?
                }
                Step::Downsample {
                    dims: [n, c, h, w],
                    stride: [sh, sw],
                    input,
                    output,
                } => {
                    if *sh == 0 || *sw == 0 {
                        return Err(refuse("a zero stride".into()));
                    }
                    let (p, q) = (h.div_ceil(*sh), w.div_ceil(*sw));
                    let e = n * c * p * q;
                    let x = fits(*input, n * c * h * w, "input")?;
                    let y = fits(*output, e, "output")?;
                    let mut args = vec![arena(x), arena(y)];
                    args.extend([e, *c, *h, *w, p, q, *sh, *sw].map(|v| U64(v as u64)));
                    kernel(Kernel::Downsample, e, args)?
                }
                Step::Elementwise {
                    op,
                    elements,
                    inputs,
                    output,
                } => {
                    let e = *elements;
                    let want = if matches!(op, ElementwiseOp::Add | ElementwiseOp::AddRelu) {
                        2
                    } else {
                        1
                    };
                    if inputs.len() != want {
                        return Err(refuse(format!(
                            "{op:?} takes {want} inputs, the step has {}",
                            inputs.len()
                        )));
                    }
                    let a = fits(inputs[0], e, "first input")?;
                    let y = fits(*output, e, "output")?;
                    let n = U64(e as u64);
                    match op {
                        ElementwiseOp::Relu => {
                            kernel(Kernel::Relu, e, vec![arena(a), arena(y), n])?
                        }
                        ElementwiseOp::Add | ElementwiseOp::AddRelu => {
                            let b = fits(inputs[1], e, "second input")?;
                            let k = if *op == ElementwiseOp::Add {
                                Kernel::Add
                            } else {
                                Kernel::AddRelu
                            };
                            kernel(k, e, vec![arena(a), arena(b), arena(y), n])?
                        }
                        ElementwiseOp::Scale(f) => {
                            kernel(Kernel::Scale, e, vec![arena(a), arena(y), n, F32(*f)])?
                        }
                        ElementwiseOp::Bias(b) => {
                            let channels = plan
                                .weights
                                .get(*b)
                                .map(|w| w.dims.iter().product::<usize>())
                                .ok_or_else(|| refuse(format!("weight {b} is not in the plan")))?;
                            if channels == 0 || e % channels != 0 {
                                return Err(refuse(format!(
                                    "a bias of {channels} channels over {e} elements"
                                )));
                            }
                            let b = weight(*b, channels)?;
                            kernel(
                                Kernel::Bias,
                                e,
                                vec![
                                    arena(a),
                                    Ptr(Operand::Weight(b)),
                                    arena(y),
                                    n,
                                    U64(channels as u64),
                                ],
                            )?
                        }
                    }
                }
            };
            launches.push(next);
        }
        Ok(Self { launches })
    }

    /// How many launches use each library: (cuDNN, cuBLASLt, our kernels).
    pub fn counts(&self) -> (usize, usize, usize) {
        self.launches
            .iter()
            .fold((0, 0, 0), |(d, b, k), l| match l {
                Launch::Conv { .. } | Launch::Pool { .. } => (d + 1, b, k),
                Launch::Matmul { .. } => (d, b + 1, k),
                Launch::Kernel { .. } => (d, b, k + 1),
            })
    }
}

/// The workspace one device needs for all its launches: the largest any launch asked for
/// (the launches of one stream run one after another), rounded up to 256 bytes.
pub fn workspace_bytes(sizes: impl IntoIterator<Item = u64>) -> u64 {
    sizes
        .into_iter()
        .max()
        .unwrap_or(0)
        .div_ceil(crate::cuda_plan::ALIGN)
        * crate::cuda_plan::ALIGN
}
