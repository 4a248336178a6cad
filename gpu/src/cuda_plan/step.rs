//! The steps of an execution plan: what one kernel launch (or no-op view) does, with its
//! input and output buffers as offsets in the plan's activation arena.

/// A span of bytes in the activation arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArenaSpan {
    /// Byte offset from the arena's start (a multiple of [`super::ALIGN`]).
    pub offset: u64,
    /// Length in bytes.
    pub bytes: u64,
}

impl ArenaSpan {
    /// True when the two spans share a byte.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.offset < other.offset + other.bytes && other.offset < self.offset + self.bytes
    }
}

/// Geometry of a 2-D convolution over NHWC activations with a KRSC (`OHWI`) filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub k: usize,
    /// Filter height.
    pub r: usize,
    /// Filter width.
    pub s: usize,
    /// Output height.
    pub p: usize,
    /// Output width.
    pub q: usize,
    /// Strides (height, width).
    pub stride: [usize; 2],
    /// Padding before (top, left); padding after is implied by the output size.
    pub pad: [usize; 2],
    /// Dilations (height, width).
    pub dilation: [usize; 2],
    /// Groups (1 for a plain convolution; `c` for depthwise).
    pub groups: usize,
}

/// Geometry of a 2-D pooling window over NHWC activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window (height, width).
    pub window: [usize; 2],
    /// Strides (height, width).
    pub stride: [usize; 2],
    /// Padding before (top, left).
    pub pad: [usize; 2],
    /// Output height.
    pub p: usize,
    /// Output width.
    pub q: usize,
}

/// What a pooling step computes over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// The maximum (padding never wins).
    Max,
    /// The mean over the window's in-bounds elements.
    Average,
}

/// What a GEMM's epilogue adds after `A x B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epilogue {
    /// A per-output-column bias (weight index), added to every row.
    pub bias: Option<usize>,
    /// `max(0, .)` after the bias.
    pub relu: bool,
}

/// An element-wise operation (a small kernel).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ElementwiseOp {
    /// `out = max(a, 0)`.
    Relu,
    /// `out = a + b`, same shapes.
    Add,
    /// `out = max(a + b, 0)`: a residual add followed by its ReLU.
    AddRelu,
    /// `out = a * factor`.
    Scale(f32),
    /// `out = a + bias[channel]` (channels last; the bias is a weight index).
    Bias(usize),
}

/// One step of a plan. Buffers are [`ArenaSpan`]s; weights are indices into
/// [`super::Plan::weights`].
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The model input, NCHW as clients send it, rewritten NHWC into the arena (a small
    /// transpose kernel; a copy when the input is not an image).
    InputToNhwc {
        /// Where the input bytes are staged (written by the host-to-device copy).
        input: ArenaSpan,
        /// NHWC result.
        output: ArenaSpan,
        /// Logical NCHW dimensions of the input.
        dims: [usize; 4],
    },
    /// `output = act(conv(input, weight) + bias)` (cuDNN, NHWC, tensor-op math).
    Conv {
        /// Geometry.
        geometry: ConvGeometry,
        /// Filter (KRSC).
        weight: usize,
        /// Per-output-channel bias.
        bias: Option<usize>,
        /// ReLU fused after the bias.
        relu: bool,
        /// NHWC input.
        input: ArenaSpan,
        /// NHWC output.
        output: ArenaSpan,
    },
    /// `output[m x n] = epilogue(input[m x k] x weight)` (cuBLASLt).
    Gemm {
        /// Rows.
        m: usize,
        /// Columns of the output.
        n: usize,
        /// The reduced dimension.
        k: usize,
        /// The weight, stored `k x n` (`false`) or `n x k` (`true`, row-major).
        weight_transposed: bool,
        /// Weight index.
        weight: usize,
        /// Bias and activation.
        epilogue: Epilogue,
        /// Row-major `m x k` input.
        input: ArenaSpan,
        /// Row-major `m x n` output.
        output: ArenaSpan,
    },
    /// Pooling (cuDNN).
    Pool {
        /// Max or average.
        kind: PoolKind,
        /// Geometry.
        geometry: PoolGeometry,
        /// NHWC input.
        input: ArenaSpan,
        /// NHWC output.
        output: ArenaSpan,
    },
    /// An element-wise kernel over `elements` values.
    Elementwise {
        /// The operation.
        op: ElementwiseOp,
        /// Element count.
        elements: usize,
        /// Operands (one or two).
        inputs: Vec<ArenaSpan>,
        /// Result.
        output: ArenaSpan,
    },
    /// An NHWC image flattened as NCHW would be (`[n, c*h*w]` in channel-major order):
    /// a small transpose kernel. A no-op view when `h == w == 1` (then it is a
    /// [`Step::View`]).
    FlattenNhwc {
        /// Logical NCHW dimensions.
        dims: [usize; 4],
        /// NHWC input.
        input: ArenaSpan,
        /// Row-major `[n, c*h*w]` output.
        output: ArenaSpan,
    },
    /// Keep every `stride`-th row and column of an NHWC image (a strided copy kernel;
    /// folded into the convolution when a 1x1 convolution reads it).
    Downsample {
        /// Logical NCHW dimensions of the input.
        dims: [usize; 4],
        /// Strides (height, width).
        stride: [usize; 2],
        /// NHWC input.
        input: ArenaSpan,
        /// NHWC output.
        output: ArenaSpan,
    },
    /// A reshape that keeps the bytes (Reshape, Flatten, squeeze/unsqueeze): nothing
    /// runs, `output` is `input`'s bytes.
    View {
        /// The op it stands for (`"Reshape"`, `"Rm(2)"`, ...).
        op: String,
        /// Bytes read.
        input: ArenaSpan,
        /// The same bytes.
        output: ArenaSpan,
    },
}

impl Step {
    /// The arena spans the step reads.
    pub fn inputs(&self) -> Vec<ArenaSpan> {
        match self {
            Self::InputToNhwc { input, .. }
            | Self::Conv { input, .. }
            | Self::Gemm { input, .. }
            | Self::Pool { input, .. }
            | Self::FlattenNhwc { input, .. }
            | Self::Downsample { input, .. }
            | Self::View { input, .. } => vec![*input],
            Self::Elementwise { inputs, .. } => inputs.clone(),
        }
    }

    /// The arena span the step writes.
    pub fn output(&self) -> ArenaSpan {
        match self {
            Self::InputToNhwc { output, .. }
            | Self::Conv { output, .. }
            | Self::Gemm { output, .. }
            | Self::Pool { output, .. }
            | Self::Elementwise { output, .. }
            | Self::FlattenNhwc { output, .. }
            | Self::Downsample { output, .. }
            | Self::View { output, .. } => *output,
        }
    }

    /// A short name of the step's kind (`"conv"`, `"gemm"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InputToNhwc { .. } => "input_to_nhwc",
            Self::Conv { .. } => "conv",
            Self::Gemm { .. } => "gemm",
            Self::Pool { .. } => "pool",
            Self::Elementwise { .. } => "elementwise",
            Self::FlattenNhwc { .. } => "flatten_nhwc",
            Self::Downsample { .. } => "downsample",
            Self::View { .. } => "view",
        }
    }

    /// True when nothing runs (the output is the input's bytes).
    pub fn is_view(&self) -> bool {
        matches!(self, Self::View { .. })
    }
}

/// Set a step's arena spans (the planner builds steps first, places buffers after).
pub(crate) fn set_spans(step: &mut Step, spans_in: &[ArenaSpan], span_out: ArenaSpan) {
    match step {
        Step::InputToNhwc { input, output, .. }
        | Step::Conv { input, output, .. }
        | Step::Gemm { input, output, .. }
        | Step::Pool { input, output, .. }
        | Step::FlattenNhwc { input, output, .. }
        | Step::Downsample { input, output, .. }
        | Step::View { input, output, .. } => {
            *input = spans_in[0];
            *output = span_out;
        }
        Step::Elementwise { inputs, output, .. } => {
            *inputs = spans_in.to_vec();
            *output = span_out;
        }
    }
}
