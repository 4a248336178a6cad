//! The executor on a device (feature `cuda`): library handles, descriptors, algorithms
//! and graphs, all made before any INFER, through cuDNN's and cuBLASLt's C APIs (`sys`)
//! on raw device addresses: activations in the model's arena, weights in the model's
//! pages of the cache slab, one workspace reserved per device.
//!
//! * [`Libraries`] (per device, at start): the cuDNN and cuBLASLt handles, our kernel
//!   module, the workspace.
//! * [`Prepared`] (per model and batch size, at registration): one [`Op`] per launch of
//!   the plan's [`Schedule`], with its descriptors created and its algorithm (and that
//!   algorithm's workspace) chosen once.
//! * [`Graph`] (per model and batch size, at each LOAD): the ops recorded, with the
//!   weights' addresses of that LOAD, into a CUDA graph by stream capture.
//!
//! It does not own the page cache, the LOAD copies or the INFER's timing (`crate::cuda`).

use super::descriptors::{ConvLaunch, MatmulEpilogue, MatrixLayout, TensorDesc};
use super::error::ExecError;
use super::kernels::{Kernel, KernelArg, KernelLaunch, Operand, ELEMENTWISE_PTX};
use super::schedule::{Launch, Schedule};
use crate::cuda_plan::{Plan, PoolKind};
use clockwork_models::Precision;
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublaslt::sys as lt;
use cudarc::cudnn::sys as dnn;
use cudarc::driver::{
    result as dres, sys as dsys, CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr,
    LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

/// The most workspace one convolution or matmul may use (the device reserves this much).
pub(crate) const WORKSPACE_BYTES: usize = 64 << 20;

fn dnn_ok(call: &'static str, status: dnn::cudnnStatus_t) -> Result<(), ExecError> {
    if status == dnn::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(ExecError::Call {
            call,
            status: format!("{status:?}"),
        })
    }
}

fn lt_ok(call: &'static str, status: lt::cublasStatus_t) -> Result<(), ExecError> {
    if status == lt::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(ExecError::Call {
            call,
            status: format!("{status:?}"),
        })
    }
}

fn drv(call: &'static str) -> impl Fn(cudarc::driver::DriverError) -> ExecError {
    move |e| ExecError::Call {
        call,
        status: format!("{e:?}"),
    }
}

/// An owned library object: created by `$create`, destroyed once by `$destroy`.
macro_rules! owned {
    ($name:ident, $lib:ident, $t:ty, $create:ident, $destroy:ident, $ok:ident) => {
        #[derive(Debug)]
        struct $name($t);
        impl $name {
            fn new() -> Result<Self, ExecError> {
                let mut raw: $t = std::ptr::null_mut();
                // SAFETY: the create call writes a fresh object into `raw`, a valid
                // out-pointer; the library was checked present before any executor
                // was built (`libs::check`).
                $ok(stringify!($create), unsafe { $lib::$create(&mut raw) })?;
                Ok(Self(raw))
            }
        }
        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: `self.0` was created by the matching create call and is
                // destroyed only here; no launch using it is in flight (owners
                // synchronise the context before dropping executors).
                let _ = unsafe { $lib::$destroy(self.0) };
            }
        }
    };
}

owned!(
    DnnTensor,
    dnn,
    dnn::cudnnTensorDescriptor_t,
    cudnnCreateTensorDescriptor,
    cudnnDestroyTensorDescriptor,
    dnn_ok
);
owned!(
    DnnFilter,
    dnn,
    dnn::cudnnFilterDescriptor_t,
    cudnnCreateFilterDescriptor,
    cudnnDestroyFilterDescriptor,
    dnn_ok
);
owned!(
    DnnConv,
    dnn,
    dnn::cudnnConvolutionDescriptor_t,
    cudnnCreateConvolutionDescriptor,
    cudnnDestroyConvolutionDescriptor,
    dnn_ok
);
owned!(
    DnnAct,
    dnn,
    dnn::cudnnActivationDescriptor_t,
    cudnnCreateActivationDescriptor,
    cudnnDestroyActivationDescriptor,
    dnn_ok
);
owned!(
    DnnPool,
    dnn,
    dnn::cudnnPoolingDescriptor_t,
    cudnnCreatePoolingDescriptor,
    cudnnDestroyPoolingDescriptor,
    dnn_ok
);
owned!(
    LtPreference,
    lt,
    lt::cublasLtMatmulPreference_t,
    cublasLtMatmulPreferenceCreate,
    cublasLtMatmulPreferenceDestroy,
    lt_ok
);

/// A cuBLASLt matrix layout.
#[derive(Debug)]
struct LtLayout(lt::cublasLtMatrixLayout_t);

impl LtLayout {
    fn new(dtype: lt::cudaDataType_t, m: MatrixLayout) -> Result<Self, ExecError> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; the values are plain integers.
        lt_ok("cublasLtMatrixLayoutCreate", unsafe {
            lt::cublasLtMatrixLayoutCreate(&mut raw, dtype, m.rows, m.cols, m.ld)
        })?;
        Ok(Self(raw))
    }
}

impl Drop for LtLayout {
    fn drop(&mut self) {
        // SAFETY: created above, destroyed once, no matmul using it in flight.
        let _ = unsafe { lt::cublasLtMatrixLayoutDestroy(self.0) };
    }
}

/// A cuBLASLt matmul descriptor.
#[derive(Debug)]
struct LtMatmul(lt::cublasLtMatmulDesc_t);

impl LtMatmul {
    fn new() -> Result<Self, ExecError> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; fp32 accumulation and scale type for
        // both precisions (fp16 data keeps fp32 accumulation).
        lt_ok("cublasLtMatmulDescCreate", unsafe {
            lt::cublasLtMatmulDescCreate(
                &mut raw,
                lt::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                lt::cudaDataType_t::CUDA_R_32F,
            )
        })?;
        Ok(Self(raw))
    }

    /// Set attribute `attr` to `value` (its C type's size must be `T`'s).
    fn set<T: Copy>(
        &self,
        attr: lt::cublasLtMatmulDescAttributes_t,
        value: &T,
    ) -> Result<(), ExecError> {
        // SAFETY: `value` is a live `T` of `size_of::<T>()` bytes, the size the
        // attribute's C type has (callers pass i32 for TRANSA, u32 for EPILOGUE, a
        // device address as u64 for BIAS_POINTER); cuBLASLt copies it.
        lt_ok("cublasLtMatmulDescSetAttribute", unsafe {
            lt::cublasLtMatmulDescSetAttribute(
                self.0,
                attr,
                (value as *const T).cast::<c_void>(),
                size_of::<T>(),
            )
        })
    }
}

impl Drop for LtMatmul {
    fn drop(&mut self) {
        // SAFETY: created above, destroyed once, no matmul using it in flight.
        let _ = unsafe { lt::cublasLtMatmulDescDestroy(self.0) };
    }
}

/// One device's libraries: handles bound at start, our kernels loaded, the workspace
/// reserved. Made before the worker accepts a controller.
#[derive(Debug)]
pub(crate) struct Libraries {
    dnn: dnn::cudnnHandle_t,
    lt: lt::cublasLtHandle_t,
    kernels: HashMap<&'static str, CudaFunction>,
    workspace: CudaSlice<u8>,
}

impl Libraries {
    /// Create the handles, load the kernel module and reserve the workspace. Call
    /// [`super::libs::check`] first: a missing library would panic inside cudarc.
    pub(crate) fn new(ctx: &Arc<CudaContext>, stream: &Arc<CudaStream>) -> Result<Self, ExecError> {
        let mut handle = std::ptr::null_mut();
        ctx.bind_to_thread().map_err(drv("cuCtxSetCurrent"))?;
        // SAFETY: valid out-pointer; libcudnn is present (checked by the caller) and the
        // context is current on this thread (bound just above).
        dnn_ok("cudnnCreate", unsafe { dnn::cudnnCreate(&mut handle) })?;
        let mut lt_handle = std::ptr::null_mut();
        // SAFETY: valid out-pointer; libcublasLt is present (checked by the caller).
        if let Err(e) = lt_ok("cublasLtCreate", unsafe {
            lt::cublasLtCreate(&mut lt_handle)
        }) {
            // SAFETY: created just above, destroyed once.
            let _ = unsafe { dnn::cudnnDestroy(handle) };
            return Err(e);
        }
        let mut libs = Self {
            dnn: handle,
            lt: lt_handle,
            kernels: HashMap::new(),
            workspace: stream
                .alloc_zeros::<u8>(WORKSPACE_BYTES)
                .map_err(drv("cuMemAlloc"))?,
        };
        let module = ctx
            .load_module(Ptx::from_src(ELEMENTWISE_PTX))
            .map_err(drv("cuModuleLoadData"))?;
        for kernel in Kernel::ALL {
            for precision in [Precision::Fp32, Precision::Fp16] {
                let entry = kernel.entry(precision);
                let f = module
                    .load_function(entry)
                    .map_err(drv("cuModuleGetFunction"))?;
                libs.kernels.insert(entry, f);
            }
        }
        Ok(libs)
    }

    /// Bind the cuDNN handle to `stream` (outside any capture).
    pub(crate) fn set_stream(&self, stream: &CudaStream) -> Result<(), ExecError> {
        // SAFETY: the handle is live; the stream outlives every call recorded while it
        // is set (the caller records and ends its capture before the stream can go).
        dnn_ok("cudnnSetStream", unsafe {
            dnn::cudnnSetStream(self.dnn, stream.cu_stream() as dnn::cudaStream_t)
        })
    }

    fn workspace(&self, stream: &CudaStream) -> u64 {
        let (ptr, _sync) = self.workspace.device_ptr(stream);
        ptr
    }
}

impl Drop for Libraries {
    fn drop(&mut self) {
        // SAFETY: both handles were created in `new`, are destroyed once, and the owner
        // synchronises the context before dropping (nothing recorded with them runs).
        unsafe {
            let _ = dnn::cudnnDestroy(self.dnn);
            let _ = lt::cublasLtDestroy(self.lt);
        }
    }
}

fn dnn_type(p: Precision) -> dnn::cudnnDataType_t {
    match p {
        Precision::Fp32 => dnn::cudnnDataType_t::CUDNN_DATA_FLOAT,
        Precision::Fp16 => dnn::cudnnDataType_t::CUDNN_DATA_HALF,
    }
}

fn lt_type(p: Precision) -> lt::cudaDataType_t {
    match p {
        Precision::Fp32 => lt::cudaDataType_t::CUDA_R_32F,
        Precision::Fp16 => lt::cudaDataType_t::CUDA_R_16F,
    }
}

fn tensor(p: Precision, t: &TensorDesc) -> Result<DnnTensor, ExecError> {
    let d = DnnTensor::new()?;
    let ([n, c, h, w], [sn, sc, sh, sw]) = (t.dims, t.strides);
    // SAFETY: a live descriptor and plain integers (checked to fit i32 by
    // `descriptors`).
    dnn_ok("cudnnSetTensor4dDescriptorEx", unsafe {
        dnn::cudnnSetTensor4dDescriptorEx(d.0, dnn_type(p), n, c, h, w, sn, sc, sh, sw)
    })?;
    Ok(d)
}

/// How a convolution op is launched, decided at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvMode {
    /// `cudnnConvolutionForward`.
    Plain,
    /// `cudnnConvolutionBiasActivationForward` (ReLU, or identity with its algorithm).
    Fused,
    /// `cudnnConvolutionForward` then `cudnnAddTensor` of the bias: the identity
    /// activation's one algorithm was not available for this geometry.
    PlainThenBias,
}

#[derive(Debug)]
enum Op {
    Conv {
        x: DnnTensor,
        y: DnnTensor,
        w: DnnFilter,
        conv: DnnConv,
        act: DnnAct,
        bias: Option<(DnnTensor, usize)>,
        algo: dnn::cudnnConvolutionFwdAlgo_t,
        workspace: usize,
        mode: ConvMode,
        weight: usize,
        x_at: u64,
        y_at: u64,
    },
    Pool {
        pool: DnnPool,
        x: DnnTensor,
        y: DnnTensor,
        x_at: u64,
        y_at: u64,
    },
    Matmul {
        desc: LtMatmul,
        a: LtLayout,
        b: LtLayout,
        d: LtLayout,
        algo: lt::cublasLtMatmulAlgo_t,
        workspace: usize,
        weight: usize,
        bias: Option<usize>,
        x_at: u64,
        y_at: u64,
    },
    Kernel {
        function: CudaFunction,
        launch: KernelLaunch,
    },
}

/// The best forward algorithm cuDNN's heuristics offer that fits the workspace, and its
/// workspace size.
fn pick_conv_algo(
    libs: &Libraries,
    x: &DnnTensor,
    w: &DnnFilter,
    conv: &DnnConv,
    y: &DnnTensor,
) -> Result<(dnn::cudnnConvolutionFwdAlgo_t, usize), ExecError> {
    const N: usize = 8;
    // SAFETY: the perf struct is plain data (enums whose zero is a valid variant,
    // numbers); all-zero is a valid value, overwritten by cuDNN.
    let mut perf: [dnn::cudnnConvolutionFwdAlgoPerf_t; N] = unsafe { std::mem::zeroed() };
    let mut returned = 0;
    // SAFETY: live handle and descriptors; `perf` holds N results and `returned` is a
    // valid out-pointer.
    dnn_ok("cudnnGetConvolutionForwardAlgorithm_v7", unsafe {
        dnn::cudnnGetConvolutionForwardAlgorithm_v7(
            libs.dnn,
            x.0,
            w.0,
            conv.0,
            y.0,
            N as i32,
            &mut returned,
            perf.as_mut_ptr(),
        )
    })?;
    let returned = usize::try_from(returned).unwrap_or(0).min(N);
    perf[..returned]
        .iter()
        .find(|p| {
            p.status == dnn::cudnnStatus_t::CUDNN_STATUS_SUCCESS && p.memory <= WORKSPACE_BYTES
        })
        .map(|p| (p.algo, p.memory))
        .ok_or_else(|| ExecError::Call {
            call: "cudnnGetConvolutionForwardAlgorithm_v7",
            status: format!("no algorithm within a {WORKSPACE_BYTES}-byte workspace"),
        })
}

fn conv_workspace(
    libs: &Libraries,
    x: &DnnTensor,
    w: &DnnFilter,
    conv: &DnnConv,
    y: &DnnTensor,
    algo: dnn::cudnnConvolutionFwdAlgo_t,
) -> Result<usize, ExecError> {
    let mut bytes = 0;
    // SAFETY: live handle and descriptors, valid out-pointer.
    dnn_ok("cudnnGetConvolutionForwardWorkspaceSize", unsafe {
        dnn::cudnnGetConvolutionForwardWorkspaceSize(
            libs.dnn, x.0, w.0, conv.0, y.0, algo, &mut bytes,
        )
    })?;
    Ok(bytes)
}

/// A plan's launches with their descriptors made and algorithms chosen, for one batch
/// size. Nothing in it depends on where the weights are.
#[derive(Debug)]
pub(crate) struct Prepared {
    precision: Precision,
    ops: Vec<Op>,
    /// The largest workspace any op chose.
    pub(crate) workspace: usize,
}

impl Prepared {
    /// Make every descriptor of `schedule` (of `plan`) and choose every algorithm.
    pub(crate) fn new(
        libs: &Libraries,
        plan: &Plan,
        schedule: &Schedule,
    ) -> Result<Self, ExecError> {
        let p = plan.precision;
        let mut ops = Vec::with_capacity(schedule.launches.len());
        for launch in &schedule.launches {
            ops.push(match launch {
                Launch::Conv { desc, weight, bias, x, y, .. } => {
                    let (xt, yt) = (tensor(p, &desc.x)?, tensor(p, &desc.y)?);
                    let w = DnnFilter::new()?;
                    // SAFETY: live descriptor, plain integers.
                    dnn_ok("cudnnSetFilter4dDescriptor", unsafe {
                        dnn::cudnnSetFilter4dDescriptor(
                            w.0,
                            dnn_type(p),
                            dnn::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC,
                            desc.w.k,
                            desc.w.c,
                            desc.w.r,
                            desc.w.s,
                        )
                    })?;
                    let conv = DnnConv::new()?;
                    let math = match p {
                        // Full fp32 (no TF32), to stay close to the CPU reference.
                        Precision::Fp32 => dnn::cudnnMathType_t::CUDNN_FMA_MATH,
                        Precision::Fp16 => dnn::cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
                    };
                    // SAFETY: live descriptor, plain integers and enums; fp32
                    // accumulation for both precisions.
                    unsafe {
                        dnn_ok("cudnnSetConvolution2dDescriptor", dnn::cudnnSetConvolution2dDescriptor(
                            conv.0,
                            desc.pad[0],
                            desc.pad[1],
                            desc.stride[0],
                            desc.stride[1],
                            desc.dilation[0],
                            desc.dilation[1],
                            dnn::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                            dnn::cudnnDataType_t::CUDNN_DATA_FLOAT,
                        ))?;
                        dnn_ok("cudnnSetConvolutionGroupCount", dnn::cudnnSetConvolutionGroupCount(conv.0, desc.groups))?;
                        dnn_ok("cudnnSetConvolutionMathType", dnn::cudnnSetConvolutionMathType(conv.0, math))?;
                    }
                    let act = DnnAct::new()?;
                    let act_mode = if desc.launch == ConvLaunch::BiasRelu {
                        dnn::cudnnActivationMode_t::CUDNN_ACTIVATION_RELU
                    } else {
                        dnn::cudnnActivationMode_t::CUDNN_ACTIVATION_IDENTITY
                    };
                    // SAFETY: live descriptor, enums and a coefficient (unused by ReLU
                    // and identity).
                    dnn_ok("cudnnSetActivationDescriptor", unsafe {
                        dnn::cudnnSetActivationDescriptor(
                            act.0,
                            act_mode,
                            dnn::cudnnNanPropagation_t::CUDNN_NOT_PROPAGATE_NAN,
                            0.0,
                        )
                    })?;
                    let bias = match (desc.bias, bias) {
                        (Some(b), Some(i)) => Some((tensor(p, &b)?, *i)),
                        _ => None,
                    };
                    let (mode, algo, workspace) = match desc.launch {
                        ConvLaunch::Plain => {
                            let (a, ws) = pick_conv_algo(libs, &xt, &w, &conv, &yt)?;
                            (ConvMode::Plain, a, ws)
                        }
                        ConvLaunch::BiasRelu => {
                            let (a, ws) = pick_conv_algo(libs, &xt, &w, &conv, &yt)?;
                            (ConvMode::Fused, a, ws)
                        }
                        ConvLaunch::BiasIdentity => {
                            // cuDNN runs the identity activation only with this algorithm.
                            let a = dnn::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
                            match conv_workspace(libs, &xt, &w, &conv, &yt, a) {
                                Ok(ws) if ws <= WORKSPACE_BYTES => (ConvMode::Fused, a, ws),
                                _ => {
                                    let (a, ws) = pick_conv_algo(libs, &xt, &w, &conv, &yt)?;
                                    (ConvMode::PlainThenBias, a, ws)
                                }
                            }
                        }
                    };
                    Op::Conv {
                        x: xt,
                        y: yt,
                        w,
                        conv,
                        act,
                        bias,
                        algo,
                        workspace,
                        mode,
                        weight: *weight,
                        x_at: *x,
                        y_at: *y,
                    }
                }
                Launch::Pool { desc, x, y, .. } => {
                    let pool = DnnPool::new()?;
                    let mode = match desc.kind {
                        PoolKind::Max => dnn::cudnnPoolingMode_t::CUDNN_POOLING_MAX,
                        PoolKind::Average => dnn::cudnnPoolingMode_t::CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
                    };
                    // SAFETY: live descriptor, enums and integers.
                    dnn_ok("cudnnSetPooling2dDescriptor", unsafe {
                        dnn::cudnnSetPooling2dDescriptor(
                            pool.0,
                            mode,
                            dnn::cudnnNanPropagation_t::CUDNN_NOT_PROPAGATE_NAN,
                            desc.window[0],
                            desc.window[1],
                            desc.pad[0],
                            desc.pad[1],
                            desc.stride[0],
                            desc.stride[1],
                        )
                    })?;
                    Op::Pool {
                        pool,
                        x: tensor(p, &desc.x)?,
                        y: tensor(p, &desc.y)?,
                        x_at: *x,
                        y_at: *y,
                    }
                }
                Launch::Matmul { desc, weight, bias, x, y, .. } => {
                    let m = LtMatmul::new()?;
                    let trans = if desc.trans_a { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N } as i32;
                    m.set(lt::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA, &trans)?;
                    let epilogue = match desc.epilogue {
                        MatmulEpilogue::Default => lt::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_DEFAULT,
                        MatmulEpilogue::Relu => lt::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_RELU,
                        MatmulEpilogue::Bias => lt::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS,
                        MatmulEpilogue::ReluBias => lt::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_RELU_BIAS,
                    } as u32;
                    m.set(lt::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue)?;
                    let t = lt_type(p);
                    let (a, b, d) = (LtLayout::new(t, desc.a)?, LtLayout::new(t, desc.b)?, LtLayout::new(t, desc.d)?);
                    let pref = LtPreference::new()?;
                    let max_ws = WORKSPACE_BYTES as u64;
                    // SAFETY: live preference; the attribute is a u64 and `max_ws` is one.
                    lt_ok("cublasLtMatmulPreferenceSetAttribute", unsafe {
                        lt::cublasLtMatmulPreferenceSetAttribute(
                            pref.0,
                            lt::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                            (&max_ws as *const u64).cast::<c_void>(),
                            size_of::<u64>(),
                        )
                    })?;
                    // SAFETY: plain data (an opaque algorithm of integers, sizes, a status
                    // enum whose zero is SUCCESS); overwritten by cuBLASLt.
                    let mut result: lt::cublasLtMatmulHeuristicResult_t = unsafe { std::mem::zeroed() };
                    let mut returned = 0;
                    // SAFETY: live handle, descriptors and preference; `result` holds one
                    // result and `returned` is a valid out-pointer. C is D's layout.
                    lt_ok("cublasLtMatmulAlgoGetHeuristic", unsafe {
                        lt::cublasLtMatmulAlgoGetHeuristic(
                            libs.lt, m.0, a.0, b.0, d.0, d.0, pref.0, 1, &mut result, &mut returned,
                        )
                    })?;
                    if returned < 1 {
                        return Err(ExecError::Call {
                            call: "cublasLtMatmulAlgoGetHeuristic",
                            status: "no algorithm for this matmul".into(),
                        });
                    }
                    Op::Matmul {
                        desc: m,
                        a,
                        b,
                        d,
                        algo: result.algo,
                        workspace: result.workspaceSize,
                        weight: *weight,
                        bias: *bias,
                        x_at: *x,
                        y_at: *y,
                    }
                }
                Launch::Kernel { launch, .. } => {
                    let entry = launch.kernel.entry(p);
                    let function = libs.kernels.get(entry).cloned().ok_or_else(|| ExecError::Call {
                        call: "cuModuleGetFunction",
                        status: format!("{entry} was not loaded"),
                    })?;
                    Op::Kernel {
                        function,
                        launch: launch.clone(),
                    }
                }
            });
        }
        let workspace = super::schedule::workspace_bytes(ops.iter().map(|o| match o {
            Op::Conv { workspace, .. } | Op::Matmul { workspace, .. } => *workspace as u64,
            _ => 0,
        })) as usize;
        Ok(Self {
            precision: p,
            ops,
            workspace,
        })
    }

    /// Enqueue every op on `stream` (captured, or eagerly as a warm-up): activations
    /// at `arena`, weight `i` at `weights[i]`. The cuDNN handle must be bound to
    /// `stream` ([`Libraries::set_stream`]).
    pub(crate) fn record(
        &self,
        libs: &Libraries,
        stream: &Arc<CudaStream>,
        arena: u64,
        weights: &[u64],
    ) -> Result<(), ExecError> {
        let ws = libs.workspace(stream);
        let one = 1.0f32;
        let zero = 0.0f32;
        let alpha = (&one as *const f32).cast::<c_void>();
        let beta = (&zero as *const f32).cast::<c_void>();
        let weight = |i: usize| {
            weights.get(i).copied().ok_or_else(|| ExecError::Weight {
                index: i,
                reason: "no address for it".into(),
            })
        };
        let dev = |a: u64| a as *mut c_void;
        for op in &self.ops {
            match op {
                Op::Conv {
                    x,
                    y,
                    w,
                    conv,
                    act,
                    bias,
                    algo,
                    workspace,
                    mode,
                    weight: wi,
                    x_at,
                    y_at,
                } => {
                    let (xp, yp, wp) = (dev(arena + x_at), dev(arena + y_at), dev(weight(*wi)?));
                    match (mode, bias) {
                        (ConvMode::Fused, Some((bt, bi))) => {
                            // SAFETY: descriptors made for exactly these spans (checked by
                            // `Schedule`: the arena spans hold the tensors, the weights'
                            // sizes match), weights inside the model's loaded pages,
                            // workspace of WORKSPACE_BYTES >= the algorithm's. z = y with
                            // alpha2 = 0 (cuDNN reads nothing from it). Alpha and beta
                            // are f32, as cuDNN takes for float and half data.
                            dnn_ok("cudnnConvolutionBiasActivationForward", unsafe {
                                dnn::cudnnConvolutionBiasActivationForward(
                                    libs.dnn,
                                    alpha,
                                    x.0,
                                    xp,
                                    w.0,
                                    wp,
                                    conv.0,
                                    *algo,
                                    dev(ws),
                                    *workspace,
                                    beta,
                                    y.0,
                                    yp,
                                    bt.0,
                                    dev(weight(*bi)?),
                                    act.0,
                                    y.0,
                                    yp,
                                )
                            })?;
                        }
                        (_, bias) => {
                            // SAFETY: as above, without bias and activation.
                            dnn_ok("cudnnConvolutionForward", unsafe {
                                dnn::cudnnConvolutionForward(
                                    libs.dnn,
                                    alpha,
                                    x.0,
                                    xp,
                                    w.0,
                                    wp,
                                    conv.0,
                                    *algo,
                                    dev(ws),
                                    *workspace,
                                    beta,
                                    y.0,
                                    yp,
                                )
                            })?;
                            if let Some((bt, bi)) = bias {
                                // SAFETY: the bias is k values broadcast over y (beta 1:
                                // added to the convolution's output).
                                dnn_ok("cudnnAddTensor", unsafe {
                                    dnn::cudnnAddTensor(
                                        libs.dnn,
                                        alpha,
                                        bt.0,
                                        dev(weight(*bi)?),
                                        alpha,
                                        y.0,
                                        yp,
                                    )
                                })?;
                            }
                        }
                    }
                }
                Op::Pool {
                    pool,
                    x,
                    y,
                    x_at,
                    y_at,
                } => {
                    // SAFETY: descriptors made for these arena spans (checked by
                    // `Schedule`).
                    dnn_ok("cudnnPoolingForward", unsafe {
                        dnn::cudnnPoolingForward(
                            libs.dnn,
                            pool.0,
                            alpha,
                            x.0,
                            dev(arena + x_at),
                            beta,
                            y.0,
                            dev(arena + y_at),
                        )
                    })?;
                }
                Op::Matmul {
                    desc,
                    a,
                    b,
                    d,
                    algo,
                    workspace,
                    weight: wi,
                    bias,
                    x_at,
                    y_at,
                } => {
                    if let Some(bi) = bias {
                        desc.set(
                            lt::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                            &weight(*bi)?,
                        )?;
                    }
                    let d_ptr = dev(arena + y_at);
                    // SAFETY: layouts made for these spans and weights (checked by
                    // `Schedule`), C = D with beta 0, the algorithm chosen for these
                    // descriptors with a workspace within WORKSPACE_BYTES.
                    lt_ok("cublasLtMatmul", unsafe {
                        lt::cublasLtMatmul(
                            libs.lt,
                            desc.0,
                            alpha,
                            dev(weight(*wi)?),
                            a.0,
                            dev(arena + x_at),
                            b.0,
                            beta,
                            d_ptr,
                            d.0,
                            d_ptr,
                            d.0,
                            algo,
                            dev(ws),
                            *workspace,
                            stream.cu_stream() as lt::cudaStream_t,
                        )
                    })?;
                }
                Op::Kernel { function, launch } => {
                    let args: Vec<u64> = launch
                        .args
                        .iter()
                        .map(|a| match a {
                            KernelArg::Ptr(Operand::Arena(o)) => Ok(arena + o),
                            KernelArg::Ptr(Operand::Weight(i)) => weight(*i),
                            KernelArg::U64(v) => Ok(*v),
                            KernelArg::F32(f) => Ok(u64::from(f.to_bits())),
                        })
                        .collect::<Result<_, _>>()?;
                    let floats: Vec<f32> = launch
                        .args
                        .iter()
                        .map(|a| if let KernelArg::F32(f) = a { *f } else { 0.0 })
                        .collect();
                    let mut builder = stream.launch_builder(function);
                    for (i, a) in launch.args.iter().enumerate() {
                        match a {
                            KernelArg::F32(_) => builder.arg(&floats[i]),
                            _ => builder.arg(&args[i]),
                        };
                    }
                    let cfg = LaunchConfig {
                        grid_dim: (launch.grid, 1, 1),
                        block_dim: (launch.block, 1, 1),
                        shared_mem_bytes: 0,
                    };
                    // SAFETY: the arguments match the entry's parameters in order and
                    // type (a test compares them with the PTX); pointers lie in the arena
                    // spans `Schedule` checked or in the model's loaded weights, and the
                    // kernels touch `n` elements of each.
                    unsafe { builder.launch(cfg) }.map_err(drv("cuLaunchKernel"))?;
                }
            }
        }
        let _ = self.precision;
        Ok(())
    }
}

/// One instantiated CUDA graph of a (model, batch size): the ops recorded with one
/// LOAD's weight addresses.
#[derive(Debug)]
pub(crate) struct Graph(dsys::CUgraphExec);

impl Graph {
    /// Capture `prepared` on `stream` (which must be idle of other capture work) and
    /// instantiate it.
    pub(crate) fn capture(
        prepared: &Prepared,
        libs: &Libraries,
        stream: &Arc<CudaStream>,
        arena: u64,
        weights: &[u64],
    ) -> Result<Self, ExecError> {
        libs.set_stream(stream)?;
        let s = stream.cu_stream();
        // SAFETY: a live stream of the current context; thread-local mode makes unsafe
        // calls from this thread during the capture fail instead of corrupting it.
        unsafe {
            dres::stream::begin_capture(
                s,
                dsys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
            )
        }
        .map_err(drv("cuStreamBeginCapture"))?;
        let recorded = prepared.record(libs, stream, arena, weights);
        // SAFETY: ends the capture begun above, on the same stream, whatever happened.
        let graph = unsafe { dres::stream::end_capture(s) }.map_err(drv("cuStreamEndCapture"));
        let graph = match (recorded, graph) {
            (Ok(()), Ok(g)) if !g.is_null() => g,
            (recorded, graph) => {
                let err = match (&recorded, &graph) {
                    (Err(e), _) | (Ok(()), Err(e)) => e.clone(),
                    (Ok(()), Ok(_)) => ExecError::Call {
                        call: "cuStreamEndCapture",
                        status: "the capture recorded no graph".into(),
                    },
                };
                if let Ok(g) = graph {
                    if !g.is_null() {
                        // SAFETY: the graph came from the capture above and is not used
                        // again.
                        let _ = unsafe { dres::graph::destroy(g) };
                    }
                }
                return Err(err);
            }
        };
        // SAFETY: `graph` is a valid captured graph; the executable copy is independent
        // of it, so the graph is destroyed right after.
        let exec = unsafe { dres::graph::instantiate(graph, dsys::CUgraphInstantiate_flags(0)) };
        // SAFETY: see above.
        let _ = unsafe { dres::graph::destroy(graph) };
        Ok(Self(exec.map_err(drv("cuGraphInstantiate"))?))
    }

    /// Enqueue one replay on `stream`.
    pub(crate) fn launch(&self, stream: &CudaStream) -> Result<(), ExecError> {
        // SAFETY: a live executable graph of this context; what it touches (arena,
        // weights, workspace) outlives it (its owner drops it before those).
        unsafe { dres::graph::launch(self.0, stream.cu_stream()) }.map_err(drv("cuGraphLaunch"))
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: instantiated in `capture`, destroyed once; owners drop a graph only when
        // no replay of it is in flight (the EXEC lane is idle, or the context synced).
        let _ = unsafe { dres::graph::exec_destroy(self.0) };
    }
}
