//! What the cuDNN and cuBLASLt descriptors of a plan's steps hold, derived from the
//! plan's shapes by pure functions (no library call): NHWC tensor dimensions and strides,
//! KRSC filters, convolution and pooling parameters, and the column-major view of a
//! row-major GEMM that cuBLASLt takes. It owns the checks that a step's geometry is one
//! the libraries compute as the plan means it (symmetric padding, 32-bit dimensions); it
//! does not create descriptors (that is `device.rs`, feature `cuda`).

use super::error::ExecError;
use crate::cuda_plan::{ConvGeometry, PoolGeometry, PoolKind};

/// A 4-D tensor as cuDNN's `cudnnSetTensor4dDescriptorEx` takes it: dimensions in
/// `n, c, h, w` order and the stride of each, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorDesc {
    /// `[n, c, h, w]`.
    pub dims: [i32; 4],
    /// Element strides of `n, c, h, w`.
    pub strides: [i32; 4],
}

impl TensorDesc {
    /// Elements the tensor spans.
    pub fn elements(&self) -> u64 {
        self.dims.iter().map(|&d| d as u64).product()
    }
}

/// `value` as an `i32`, or [`ExecError::TooLarge`] naming `what`.
pub fn dim(what: &'static str, value: usize) -> Result<i32, ExecError> {
    i32::try_from(value).map_err(|_| ExecError::TooLarge {
        what,
        value: value as u64,
    })
}

/// A (height, width) pair of [`dim`]s.
fn dims(what: &'static str, [h, w]: [usize; 2]) -> Result<[i32; 2], ExecError> {
    Ok([dim(what, h)?, dim(what, w)?])
}

/// An NHWC (channels-last) activation of logical shape `[n, c, h, w]`.
pub fn nhwc_tensor(n: usize, c: usize, h: usize, w: usize) -> Result<TensorDesc, ExecError> {
    let (n, c, h, w) = (dim("n", n)?, dim("c", c)?, dim("h", h)?, dim("w", w)?);
    let hwc = h
        .checked_mul(w)
        .and_then(|hw| hw.checked_mul(c))
        .ok_or(ExecError::TooLarge {
            what: "h*w*c",
            value: h as u64 * w as u64 * c as u64,
        })?;
    Ok(TensorDesc {
        dims: [n, c, h, w],
        strides: [hwc, 1, w * c, c],
    })
}

/// A per-channel bias for cuDNN: `[1, k, 1, 1]`, contiguous.
pub fn bias_tensor(k: usize) -> Result<TensorDesc, ExecError> {
    Ok(TensorDesc {
        dims: [1, dim("k", k)?, 1, 1],
        strides: [dim("k", k)?, 1, 1, 1],
    })
}

/// A convolution filter for `cudnnSetFilter4dDescriptor` in the NHWC format: `k` output
/// channels of `r x s x c` (`c` per group), stored KRSC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterDesc {
    /// Output channels.
    pub k: i32,
    /// Input channels per group.
    pub c: i32,
    /// Filter height.
    pub r: i32,
    /// Filter width.
    pub s: i32,
}

/// How a convolution step is launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvLaunch {
    /// `cudnnConvolutionForward`: no bias, no activation.
    Plain,
    /// `cudnnConvolutionBiasActivationForward` with ReLU: `relu(conv + bias)`.
    BiasRelu,
    /// `cudnnConvolutionBiasActivationForward` with the identity activation, which cuDNN
    /// supports only with the IMPLICIT_PRECOMP_GEMM algorithm: `conv + bias`.
    BiasIdentity,
}

/// Everything a convolution step's descriptors hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvDesc {
    /// The input, NHWC.
    pub x: TensorDesc,
    /// The output, NHWC.
    pub y: TensorDesc,
    /// The filter, KRSC.
    pub w: FilterDesc,
    /// The bias (`[1, k, 1, 1]`), when the step has one.
    pub bias: Option<TensorDesc>,
    /// Padding (top, left); cuDNN pads the same after.
    pub pad: [i32; 2],
    /// Strides (height, width).
    pub stride: [i32; 2],
    /// Dilations (height, width).
    pub dilation: [i32; 2],
    /// Group count.
    pub groups: i32,
    /// Which cuDNN call runs it.
    pub launch: ConvLaunch,
}

/// Output size cuDNN computes for one spatial axis (symmetric padding), or `None` when
/// the window does not fit at all.
fn cudnn_out(
    input: usize,
    pad: usize,
    window: usize,
    stride: usize,
    dilation: usize,
) -> Option<usize> {
    let span = dilation.checked_mul(window.checked_sub(1)?)? + 1;
    let padded = input + 2 * pad;
    (padded >= span && stride > 0).then(|| (padded - span) / stride + 1)
}

/// The descriptors of a convolution step: NHWC tensors, KRSC filter, symmetric padding.
/// Refuses (`Err(reason)`) geometries cuDNN would compute differently from the plan
/// (asymmetric padding: cuDNN pads both sides alike), a ReLU without a bias (no fused
/// call for it), and groups that do not divide the channels.
pub fn conv_desc(g: &ConvGeometry, bias: bool, relu: bool) -> Result<ConvDesc, String> {
    let e = |e: ExecError| e.to_string();
    if g.groups == 0 || !g.c.is_multiple_of(g.groups) || !g.k.is_multiple_of(g.groups) {
        return Err(format!(
            "{} groups do not divide {} input and {} output channels",
            g.groups, g.c, g.k
        ));
    }
    for (axis, input, window, out) in [(0, g.h, g.r, g.p), (1, g.w, g.s, g.q)] {
        let want = cudnn_out(input, g.pad[axis], window, g.stride[axis], g.dilation[axis]);
        if want != Some(out) {
            return Err(format!(
                "axis {axis}: cuDNN pads {} on both sides and would produce {want:?} outputs, \
                 the plan has {out} (asymmetric padding)",
                g.pad[axis]
            ));
        }
    }
    let launch = match (bias, relu) {
        (false, false) => ConvLaunch::Plain,
        (true, true) => ConvLaunch::BiasRelu,
        (true, false) => ConvLaunch::BiasIdentity,
        (false, true) => return Err("a ReLU without a bias has no fused cuDNN call".into()),
    };
    Ok(ConvDesc {
        x: nhwc_tensor(g.n, g.c, g.h, g.w).map_err(e)?,
        y: nhwc_tensor(g.n, g.k, g.p, g.q).map_err(e)?,
        w: FilterDesc {
            k: dim("k", g.k).map_err(e)?,
            c: dim("c/groups", g.c / g.groups).map_err(e)?,
            r: dim("r", g.r).map_err(e)?,
            s: dim("s", g.s).map_err(e)?,
        },
        bias: if bias {
            Some(bias_tensor(g.k).map_err(e)?)
        } else {
            None
        },
        pad: dims("pad", g.pad).map_err(e)?,
        stride: dims("stride", g.stride).map_err(e)?,
        dilation: dims("dilation", g.dilation).map_err(e)?,
        groups: dim("groups", g.groups).map_err(e)?,
        launch,
    })
}

/// Everything a pooling step's descriptors hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolDesc {
    /// Max, or average over the in-bounds elements (`..._COUNT_EXCLUDE_PADDING`).
    pub kind: PoolKind,
    /// Window (height, width).
    pub window: [i32; 2],
    /// Padding (top, left); cuDNN pads the same after.
    pub pad: [i32; 2],
    /// Strides (height, width).
    pub stride: [i32; 2],
    /// The input, NHWC.
    pub x: TensorDesc,
    /// The output, NHWC.
    pub y: TensorDesc,
}

/// The descriptors of a pooling step; refuses geometries whose output size cuDNN would
/// compute differently (asymmetric padding, ceil mode).
pub fn pool_desc(kind: PoolKind, g: &PoolGeometry) -> Result<PoolDesc, String> {
    let e = |e: ExecError| e.to_string();
    for (axis, input, out) in [(0, g.h, g.p), (1, g.w, g.q)] {
        let want = cudnn_out(input, g.pad[axis], g.window[axis], g.stride[axis], 1);
        if want != Some(out) {
            return Err(format!(
                "axis {axis}: cuDNN would produce {want:?} outputs, the plan has {out} \
                 (asymmetric padding or ceil mode)"
            ));
        }
    }
    Ok(PoolDesc {
        kind,
        window: dims("window", g.window).map_err(e)?,
        pad: dims("pad", g.pad).map_err(e)?,
        stride: dims("stride", g.stride).map_err(e)?,
        x: nhwc_tensor(g.n, g.c, g.h, g.w).map_err(e)?,
        y: nhwc_tensor(g.n, g.c, g.p, g.q).map_err(e)?,
    })
}

/// cuBLASLt's epilogue for a GEMM step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulEpilogue {
    /// `D = A B`.
    Default,
    /// `D = relu(A B)`.
    Relu,
    /// `D = A B + bias` (bias per row of the column-major `D`).
    Bias,
    /// `D = relu(A B + bias)`.
    ReluBias,
}

/// One matrix for `cublasLtMatrixLayoutCreate`: column-major `rows x cols`, leading
/// dimension `ld`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatrixLayout {
    /// Rows.
    pub rows: u64,
    /// Columns.
    pub cols: u64,
    /// Leading dimension (elements between columns).
    pub ld: i64,
}

/// A row-major GEMM `Y[m x n] = X[m x k] W` as cuBLASLt's column-major `D = op(A) B`:
/// row-major `Y` is column-major `Y^T` (`n x m`), so `A` is the weight (`W^T`, `n x k`)
/// and `B` the input (`X^T`, `k x m`). A weight stored `k x n` row-major is column-major
/// `n x k` already (`trans_a` false); one stored `n x k` is column-major `k x n`, read
/// transposed. A per-output-column bias of `Y` is a per-row bias of `D`, which is what
/// cuBLASLt's bias epilogues add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulDesc {
    /// `CUBLASLT_MATMUL_DESC_TRANSA`: the weight is read transposed.
    pub trans_a: bool,
    /// The weight.
    pub a: MatrixLayout,
    /// The input.
    pub b: MatrixLayout,
    /// The output (also `C`, with `beta = 0`).
    pub d: MatrixLayout,
    /// The epilogue.
    pub epilogue: MatmulEpilogue,
}

/// The cuBLASLt view of a plan's GEMM step.
pub fn matmul_desc(
    m: usize,
    n: usize,
    k: usize,
    weight_transposed: bool,
    bias: bool,
    relu: bool,
) -> Result<MatmulDesc, String> {
    if m == 0 || n == 0 || k == 0 {
        return Err(format!("an empty GEMM ({m} x {k} x {n})"));
    }
    let (m, n, k) = (m as u64, n as u64, k as u64);
    let ld = |v: u64| i64::try_from(v).map_err(|_| format!("leading dimension {v} too large"));
    let a = if weight_transposed {
        MatrixLayout {
            rows: k,
            cols: n,
            ld: ld(k)?,
        }
    } else {
        MatrixLayout {
            rows: n,
            cols: k,
            ld: ld(n)?,
        }
    };
    Ok(MatmulDesc {
        trans_a: weight_transposed,
        a,
        b: MatrixLayout {
            rows: k,
            cols: m,
            ld: ld(k)?,
        },
        d: MatrixLayout {
            rows: n,
            cols: m,
            ld: ld(n)?,
        },
        epilogue: match (bias, relu) {
            (false, false) => MatmulEpilogue::Default,
            (false, true) => MatmulEpilogue::Relu,
            (true, false) => MatmulEpilogue::Bias,
            (true, true) => MatmulEpilogue::ReluBias,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> ConvGeometry {
        // ResNet's stem: 3 -> 64 channels, 7x7 stride 2 pad 3, 224 -> 112.
        ConvGeometry {
            n: 2,
            c: 3,
            h: 224,
            w: 224,
            k: 64,
            r: 7,
            s: 7,
            p: 112,
            q: 112,
            stride: [2, 2],
            pad: [3, 3],
            dilation: [1, 1],
            groups: 1,
        }
    }

    #[test]
    fn nhwc_strides_put_channels_innermost() {
        let t = nhwc_tensor(2, 64, 56, 28).unwrap();
        assert_eq!(t.dims, [2, 64, 56, 28]);
        assert_eq!(t.strides, [56 * 28 * 64, 1, 28 * 64, 64]);
        assert_eq!(t.elements(), 2 * 64 * 56 * 28);
        // Element (b, c, y, x) sits at ((b*h + y)*w + x)*c + ch, as the plan lays it out.
        let (b, ch, y, x) = (1, 5, 7, 3);
        let at: i32 = [b, ch, y, x]
            .iter()
            .zip(t.strides)
            .map(|(i, s)| i * s)
            .sum();
        assert_eq!(at, ((b * 56 + y) * 28 + x) * 64 + ch);
    }

    #[test]
    fn too_large_dimensions_are_refused() {
        assert!(matches!(
            nhwc_tensor(1, 1 << 16, 1 << 8, 1 << 8),
            Err(ExecError::TooLarge { what: "h*w*c", .. })
        ));
        assert!(matches!(
            nhwc_tensor(1usize << 31, 1, 1, 1),
            Err(ExecError::TooLarge { what: "n", .. })
        ));
    }

    #[test]
    fn conv_descriptors_follow_the_geometry() {
        let d = conv_desc(&geometry(), true, true).unwrap();
        assert_eq!(d.x.dims, [2, 3, 224, 224]);
        assert_eq!(d.y.dims, [2, 64, 112, 112]);
        assert_eq!(d.y.strides, [112 * 112 * 64, 1, 112 * 64, 64]);
        assert_eq!(
            d.w,
            FilterDesc {
                k: 64,
                c: 3,
                r: 7,
                s: 7
            }
        );
        assert_eq!(d.bias.unwrap().dims, [1, 64, 1, 1]);
        assert_eq!(
            (d.pad, d.stride, d.dilation, d.groups),
            ([3, 3], [2, 2], [1, 1], 1)
        );
        assert_eq!(d.launch, ConvLaunch::BiasRelu);
        assert_eq!(
            conv_desc(&geometry(), true, false).unwrap().launch,
            ConvLaunch::BiasIdentity
        );
        let plain = conv_desc(&geometry(), false, false).unwrap();
        assert_eq!((plain.launch, plain.bias), (ConvLaunch::Plain, None));
    }

    #[test]
    fn grouped_filters_hold_channels_per_group() {
        let mut g = geometry();
        (
            g.c, g.k, g.groups, g.r, g.s, g.pad, g.stride, g.h, g.w, g.p, g.q,
        ) = (32, 32, 32, 3, 3, [1, 1], [1, 1], 10, 10, 10, 10);
        let d = conv_desc(&g, true, true).unwrap();
        assert_eq!((d.w.c, d.groups), (1, 32));
        g.groups = 3;
        assert!(conv_desc(&g, true, true).unwrap_err().contains("groups"));
    }

    #[test]
    fn refused_convolutions_say_why() {
        // Padding 3 before, 2 after: 223 outputs... plan says 112 with pad 2 before.
        let mut g = geometry();
        g.pad = [2, 3];
        let why = conv_desc(&g, true, true).unwrap_err();
        assert!(why.contains("asymmetric"), "{why}");
        let why = conv_desc(&geometry(), false, true).unwrap_err();
        assert!(why.contains("ReLU without a bias"), "{why}");
    }

    #[test]
    fn pooling_descriptors_and_refusals() {
        // ResNet's max pool: 3x3 stride 2 pad 1, 112 -> 56.
        let g = PoolGeometry {
            n: 1,
            c: 64,
            h: 112,
            w: 112,
            window: [3, 3],
            stride: [2, 2],
            pad: [1, 1],
            p: 56,
            q: 56,
        };
        let d = pool_desc(PoolKind::Max, &g).unwrap();
        assert_eq!((d.window, d.stride, d.pad), ([3, 3], [2, 2], [1, 1]));
        assert_eq!(d.y.dims, [1, 64, 56, 56]);
        // Global average pool: 7x7 window over 7x7.
        let gap = PoolGeometry {
            h: 7,
            w: 7,
            window: [7, 7],
            stride: [1, 1],
            pad: [0, 0],
            p: 1,
            q: 1,
            ..g
        };
        assert_eq!(
            pool_desc(PoolKind::Average, &gap).unwrap().y.dims,
            [1, 64, 1, 1]
        );
        // Ceil mode: 57 outputs where cuDNN computes 56.
        let ceil = PoolGeometry { p: 57, ..g };
        assert!(pool_desc(PoolKind::Max, &ceil)
            .unwrap_err()
            .contains("ceil"));
    }

    #[test]
    fn gemm_is_the_column_major_transpose() {
        // Y[4 x 10] = X[4 x 512] W, W stored 512 x 10 (k x n).
        let d = matmul_desc(4, 10, 512, false, true, false).unwrap();
        assert!(!d.trans_a);
        assert_eq!(
            d.a,
            MatrixLayout {
                rows: 10,
                cols: 512,
                ld: 10
            }
        );
        assert_eq!(
            d.b,
            MatrixLayout {
                rows: 512,
                cols: 4,
                ld: 512
            }
        );
        assert_eq!(
            d.d,
            MatrixLayout {
                rows: 10,
                cols: 4,
                ld: 10
            }
        );
        assert_eq!(d.epilogue, MatmulEpilogue::Bias);
        // W stored 10 x 512 (n x k, as ONNX Gemm with transB): read transposed.
        let t = matmul_desc(4, 10, 512, true, true, true).unwrap();
        assert!(t.trans_a);
        assert_eq!(
            t.a,
            MatrixLayout {
                rows: 512,
                cols: 10,
                ld: 512
            }
        );
        assert_eq!(t.epilogue, MatmulEpilogue::ReluBias);
        // op(A) is n x k and B is k x m whichever way A is stored.
        for d in [d, t] {
            let (ar, ac) = if d.trans_a {
                (d.a.cols, d.a.rows)
            } else {
                (d.a.rows, d.a.cols)
            };
            assert_eq!((ar, ac), (d.d.rows, d.b.rows));
            assert_eq!(d.b.cols, d.d.cols);
        }
        assert!(matmul_desc(0, 10, 5, false, false, false).is_err());
        assert_eq!(
            matmul_desc(1, 2, 3, false, false, true).unwrap().epilogue,
            MatmulEpilogue::Relu
        );
    }
}
