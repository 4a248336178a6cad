//! The executor's own kernels (element-wise ops and layout changes), shipped as PTX
//! ([`ELEMENTWISE_PTX`], made by NVRTC from [`ELEMENTWISE_SRC`], `kernels/elementwise.cu`)
//! and JIT-compiled by the driver when a device starts, plus the pure derivation of each
//! launch: which entry point, grid and block, and the argument list in the entry's order.
//! It does not launch anything (that is `device.rs`, feature `cuda`).
//!
//! Regenerating the PTX: compile `kernels/elementwise.cu` with NVRTC
//! (`--gpu-architecture=compute_75 -default-device`) and write the PTX as
//! `kernels/elementwise.ptx`. The shipped file came from NVRTC 12.9 (PTX ISA 8.8,
//! `sm_75`), which needs a driver of CUDA 12.9 or newer (driver 575+) to JIT-compile it.

use super::error::ExecError;
use clockwork_models::Precision;

/// The kernels' CUDA C source.
pub const ELEMENTWISE_SRC: &str = include_str!("kernels/elementwise.cu");
/// [`ELEMENTWISE_SRC`] compiled by NVRTC for `compute_75`.
pub const ELEMENTWISE_PTX: &str = include_str!("kernels/elementwise.ptx");

/// Threads per block of every launch.
pub const BLOCK: u32 = 256;
/// Largest grid launched; the kernels loop (grid stride) over what is left.
pub const MAX_GRID: u32 = 1 << 16;

/// One kernel of the module (each exists for fp32 and fp16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// `(a, out, n)`.
    Relu,
    /// `(a, b, out, n)`.
    Add,
    /// `(a, b, out, n)`.
    AddRelu,
    /// `(a, out, n, factor: f32)`.
    Scale,
    /// `(a, bias, out, n, channels)`.
    Bias,
    /// `(in, out, n, c, hw)`.
    NchwToNhwc,
    /// `(in, out, n, c, hw)`.
    NhwcToNchw,
    /// `(in, out, n, c, h, w, p, q, sh, sw)`.
    Downsample,
}

impl Kernel {
    /// Every kernel.
    pub const ALL: [Self; 8] = [
        Self::Relu,
        Self::Add,
        Self::AddRelu,
        Self::Scale,
        Self::Bias,
        Self::NchwToNhwc,
        Self::NhwcToNchw,
        Self::Downsample,
    ];

    /// The PTX entry point for `precision`.
    pub fn entry(self, precision: Precision) -> &'static str {
        let (f32_name, f16_name) = match self {
            Self::Relu => ("cw_relu_f32", "cw_relu_f16"),
            Self::Add => ("cw_add_f32", "cw_add_f16"),
            Self::AddRelu => ("cw_add_relu_f32", "cw_add_relu_f16"),
            Self::Scale => ("cw_scale_f32", "cw_scale_f16"),
            Self::Bias => ("cw_bias_f32", "cw_bias_f16"),
            Self::NchwToNhwc => ("cw_nchw_to_nhwc_f32", "cw_nchw_to_nhwc_f16"),
            Self::NhwcToNchw => ("cw_nhwc_to_nchw_f32", "cw_nhwc_to_nchw_f16"),
            Self::Downsample => ("cw_downsample_f32", "cw_downsample_f16"),
        };
        match precision {
            Precision::Fp32 => f32_name,
            Precision::Fp16 => f16_name,
        }
    }
}

/// Where a pointer argument points: a byte offset in the activation arena, or a weight
/// (by index in the plan), resolved to device addresses when the graph is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// Byte offset in the arena.
    Arena(u64),
    /// A weight of the plan.
    Weight(usize),
}

/// One kernel argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KernelArg {
    /// A device pointer (a `.u64` parameter).
    Ptr(Operand),
    /// A count or dimension (a `.u64` parameter).
    U64(u64),
    /// A scalar (a `.f32` parameter).
    F32(f32),
}

impl KernelArg {
    /// The PTX parameter type this argument fills.
    pub fn ptx_type(&self) -> &'static str {
        match self {
            Self::Ptr(_) | Self::U64(_) => ".u64",
            Self::F32(_) => ".f32",
        }
    }
}

/// One kernel launch, fully derived.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelLaunch {
    /// The kernel.
    pub kernel: Kernel,
    /// Blocks.
    pub grid: u32,
    /// Threads per block.
    pub block: u32,
    /// Arguments in the entry's parameter order.
    pub args: Vec<KernelArg>,
}

/// Blocks for `n` elements: enough for one element per thread, at most [`MAX_GRID`]
/// (the kernels loop over the rest), at least one.
pub fn grid_for(n: u64) -> u32 {
    u32::try_from(n.div_ceil(u64::from(BLOCK)))
        .unwrap_or(MAX_GRID)
        .clamp(1, MAX_GRID)
}

/// A launch of `kernel` over `n` output elements with `args` (which must start with the
/// kernel's pointers and then `n`, as the entry points take them).
pub fn launch(kernel: Kernel, n: u64, args: Vec<KernelArg>) -> Result<KernelLaunch, ExecError> {
    if n == 0 {
        return Err(ExecError::TooLarge {
            what: "elements (zero)",
            value: 0,
        });
    }
    Ok(KernelLaunch {
        kernel,
        grid: grid_for(n),
        block: BLOCK,
        args,
    })
}

/// The `.param` types of `entry` in `ptx`, in order, or `None` when it has no such entry.
pub fn ptx_params(ptx: &str, entry: &str) -> Option<Vec<String>> {
    let head = format!(".entry {entry}(");
    let start = ptx.find(&head)? + head.len();
    let body = &ptx[start..start + ptx[start..].find(')')?];
    Some(
        body.lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(".param")).then(|| words.next().unwrap_or("").to_owned())
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_args(kernel: Kernel) -> Vec<KernelArg> {
        use KernelArg::{Ptr, F32, U64};
        let p = |o| Ptr(Operand::Arena(o));
        match kernel {
            Kernel::Relu => vec![p(0), p(256), U64(10)],
            Kernel::Add | Kernel::AddRelu => vec![p(0), p(256), p(512), U64(10)],
            Kernel::Scale => vec![p(0), p(256), U64(10), F32(0.5)],
            Kernel::Bias => vec![p(0), Ptr(Operand::Weight(0)), p(256), U64(10), U64(5)],
            Kernel::NchwToNhwc | Kernel::NhwcToNchw => vec![p(0), p(256), U64(10), U64(5), U64(2)],
            Kernel::Downsample => {
                let mut a = vec![p(0), p(256)];
                a.extend([10, 5, 2, 2, 1, 1, 2, 2].map(U64));
                a
            }
        }
    }

    #[test]
    fn every_entry_exists_in_the_ptx_with_the_arguments_we_pass() {
        for kernel in Kernel::ALL {
            for precision in [Precision::Fp32, Precision::Fp16] {
                let entry = kernel.entry(precision);
                let params = ptx_params(ELEMENTWISE_PTX, entry)
                    .unwrap_or_else(|| panic!("{entry} missing from the PTX"));
                let args = sample_args(kernel);
                let types: Vec<&str> = args.iter().map(KernelArg::ptx_type).collect();
                assert_eq!(params, types, "{entry}'s parameters");
                assert!(ELEMENTWISE_SRC.contains(&format!("cw_{}", &entry[3..entry.len() - 4])));
            }
        }
    }

    #[test]
    fn grids_cover_the_elements_or_loop() {
        assert_eq!(grid_for(1), 1);
        assert_eq!(grid_for(256), 1);
        assert_eq!(grid_for(257), 2);
        for n in [1u64, 255, 256, 257, 1 << 20, 3 * 224 * 224 * 32] {
            let g = u64::from(grid_for(n));
            assert!(g * u64::from(BLOCK) >= n || g == u64::from(MAX_GRID));
            assert!(
                g >= 1 && (g - 1) * u64::from(BLOCK) < n,
                "no idle block for {n}"
            );
        }
        assert_eq!(grid_for(u64::MAX), MAX_GRID);
        assert_eq!(grid_for(0), 1);
        assert!(launch(Kernel::Relu, 0, vec![]).is_err());
        let l = launch(Kernel::Relu, 1000, sample_args(Kernel::Relu)).unwrap();
        assert_eq!((l.grid, l.block), (4, BLOCK));
    }

    /// The layout kernels' index arithmetic, written as in `elementwise.cu` (output
    /// index `i` -> input index), against plain loops over the logical dimensions.
    #[test]
    fn layout_index_math_matches_the_loops() {
        let (n, c, h, w) = (2u64, 3, 4, 5);
        let hw = h * w;
        // nchw_to_nhwc: out[i] = in[(b*c + ch)*hw + pix], ch = i % c, pix = (i/c) % hw.
        let to_nhwc = |i: u64| {
            let (ch, rest) = (i % c, i / c);
            let (pix, b) = (rest % hw, rest / hw);
            (b * c + ch) * hw + pix
        };
        // nhwc_to_nchw: out[i] = in[(b*hw + pix)*c + ch], pix = i % hw, ch = (i/hw) % c.
        let to_nchw = |i: u64| {
            let (pix, rest) = (i % hw, i / hw);
            let (ch, b) = (rest % c, rest / c);
            (b * hw + pix) * c + ch
        };
        for b in 0..n {
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let nchw = ((b * c + ch) * h + y) * w + x;
                        let nhwc = ((b * h + y) * w + x) * c + ch;
                        assert_eq!(to_nhwc(nhwc), nchw);
                        assert_eq!(to_nchw(nchw), nhwc);
                    }
                }
            }
        }
        // downsample by (2, 3): [n, h, w, c] -> [n, p, q, c], p = ceil(h/2), q = ceil(w/3).
        let (sh, sw) = (2u64, 3);
        let (p, q) = (h.div_ceil(sh), w.div_ceil(sw));
        let down = |i: u64| {
            let (ch, r) = (i % c, i / c);
            let (x, r) = (r % q, r / q);
            let (y, b) = (r % p, r / p);
            ((b * h + y * sh) * w + x * sw) * c + ch
        };
        let mut i = 0;
        for b in 0..n {
            for y in 0..p {
                for x in 0..q {
                    for ch in 0..c {
                        assert_eq!(down(i), ((b * h + y * sh) * w + x * sw) * c + ch);
                        i += 1;
                    }
                }
            }
        }
        assert_eq!(i, n * p * q * c);
    }

    #[test]
    fn the_source_loops_over_the_grid() {
        // Correct for any grid only because every kernel uses the grid-stride loop.
        assert_eq!(ELEMENTWISE_SRC.matches("GRID_STRIDE(i, n) {").count(), 8);
    }

    /// The source compiles wherever libnvrtc is present (no driver needed), to the same
    /// entry points and parameter lists as the shipped PTX.
    #[cfg(feature = "cuda")]
    #[test]
    fn source_still_compiles() {
        // SAFETY: a dlopen probe only.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            println!("libnvrtc not found; skipping the executor kernels' compile check");
            return;
        }
        let opts = cudarc::nvrtc::CompileOptions {
            arch: Some("compute_75"),
            options: vec!["-default-device".into()],
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(ELEMENTWISE_SRC, opts)
            .expect("the executor kernels compile");
        let src = ptx.to_src();
        for kernel in Kernel::ALL {
            for precision in [Precision::Fp32, Precision::Fp16] {
                let entry = kernel.entry(precision);
                assert_eq!(
                    ptx_params(&src, entry),
                    ptx_params(ELEMENTWISE_PTX, entry),
                    "{entry}"
                );
            }
        }
    }
}
