//! The CUDA backend (feature `cuda`): one device per engine thread, through cudarc's
//! driver API loaded at run time.
//!
//! * **Gate.** Before any driver call: `is_culib_present()` (no libcuda →
//!   [`GpuError::DriverUnavailable`]), then `device_count()` (none →
//!   [`GpuError::NoDevice`]). The driver calls of the gate also run
//!   under `catch_unwind`, so a stub libcuda that lacks symbols (cudarc panics) is an
//!   error too where panics unwind.
//! * **Memory.** At start: one device slab of `total_pages × page_size` bytes carved into
//!   pages, a device page-link table (`next_page[p]` = the model's page after `p`), and
//!   its pinned host mirror. At registration: the model's weights in pinned host memory
//!   (one copy per device; filled with a constant pattern, since profiles carry no
//!   weights). Nothing is allocated on the action path.
//! * **LOAD** (PCIe stream): write the model's page links into the mirror, copy the
//!   mirror, then one async H2D copy per page from pinned memory, between two timing
//!   events.
//! * **Real models** (an ONNX file as the profile's source) run through the executor of
//!   [`crate::cuda_exec`]: registration plans and prepares every batch size and keeps
//!   the weights' host image (device layout and precision) in pinned memory; LOAD copies
//!   it into the pages and then captures one CUDA graph per batch size on the PCIe
//!   stream before its end event (so capture counts in LOAD time); INFER copies the
//!   batch input in, replays the graph and copies the output out between the timing
//!   events. The gate also checks that libcudnn and libcublasLt load
//!   ([`GpuError::MissingLibrary`] otherwise). Written without a GPU: see
//!   docs/cuda-backend.md for what awaits its first run.
//! * **INFER** of an emulated model (EXEC stream): a stand-in kernel, shipped as PTX ([`KERNEL_PTX`], from
//!   [`KERNEL_SRC`]) and JIT-compiled by the driver at start, so only libcuda is needed
//!   at run time (PTX ISA 7.0 for `sm_70`: Volta and newer; the bindings themselves are
//!   cudarc's `cuda-12080`, so expect to need a CUDA 12 driver). It walks the model's
//!   pages through the link table, reading one value per page (so it depends on the
//!   LOAD having placed the weights where the page table says), and spins on the GPU's
//!   global timer for the profile's execution time of the padded
//!   batch. Real TVM-compiled models are out of scope; timings are what matter here.
//!   The batch's input bytes are not copied to the device yet, and its outputs are
//!   zeros of the declared size, as on the emulated device (the real executor with
//!   input and output copies is later work).
//! * **Timing.** Each timeline records a start and an end event (`CU_EVENT_DEFAULT`);
//!   the engine thread polls `try_is_complete()` on the end event (spinning while work
//!   is in flight, as the original's executors did) and reports `elapsed_ms` as the
//!   device-measured duration.
//! * Event tracking is disabled right after the context is created: the engine orders
//!   all work itself (a LOAD's copies complete before any INFER reads those pages; host
//!   buffers are written only while their stream is idle).

use crate::backend::{batch_exec_time, DeviceBackend, Timeline};
use crate::cuda_exec::device::{Graph, Libraries};
use crate::cuda_exec::model::RealModel;
use crate::cuda_exec::ExecError;
use crate::error::GpuError;
use clockwork_core::{ModelId, ModelProfile, ModelSource, Nanos};
use cudarc::driver::{
    result, sys, CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, DevicePtr,
    DriverError, LaunchConfig, PinnedHostSlice, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::panic::catch_unwind;
use std::sync::Arc;

/// The stand-in INFER kernel's CUDA C source. [`KERNEL_PTX`] is what it compiles to.
// Documentation of KERNEL_PTX outside tests; compiled only by `kernel_source_still_compiles`.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const KERNEL_SRC: &str = r#"
extern "C" __global__ void clockwork_infer(
    const float* __restrict__ slab, const unsigned int* __restrict__ next_page,
    unsigned int first_page, unsigned int n_pages, unsigned long long page_floats,
    unsigned long long busy_ns, float* __restrict__ out)
{
    unsigned long long start;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        float acc = 0.0f;
        unsigned int p = first_page;
        for (unsigned int i = 0; i < n_pages && p != 0xffffffffu; ++i) {
            acc += slab[(unsigned long long)p * page_floats];
            p = next_page[p];
        }
        out[0] = acc;
    }
    unsigned long long now;
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < busy_ns);
}
"#;

/// [`KERNEL_SRC`] compiled by NVRTC 12.8 (`--gpu-architecture=compute_70`), with the
/// `.version` line lowered from 8.7 to 7.0 (the code uses nothing newer) and the
/// generator comments dropped; checked with `ptxas` for sm_70, sm_80 and sm_90. The test
/// `kernel_source_still_compiles` recompiles the source wherever libnvrtc is present.
/// Regenerate it whenever `KERNEL_SRC` changes.
pub(crate) const KERNEL_PTX: &str = r#"
.version 7.0
.target sm_70
.address_size 64

	// .globl	clockwork_infer

.visible .entry clockwork_infer(
	.param .u64 clockwork_infer_param_0,
	.param .u64 clockwork_infer_param_1,
	.param .u32 clockwork_infer_param_2,
	.param .u32 clockwork_infer_param_3,
	.param .u64 clockwork_infer_param_4,
	.param .u64 clockwork_infer_param_5,
	.param .u64 clockwork_infer_param_6
)
{
	.reg .pred 	%p<9>;
	.reg .f32 	%f<9>;
	.reg .b32 	%r<13>;
	.reg .b64 	%rd<19>;

	ld.param.u64 	%rd4, [clockwork_infer_param_0];
	ld.param.u64 	%rd5, [clockwork_infer_param_1];
	ld.param.u32 	%r12, [clockwork_infer_param_2];
	ld.param.u32 	%r6, [clockwork_infer_param_3];
	ld.param.u64 	%rd6, [clockwork_infer_param_4];
	ld.param.u64 	%rd7, [clockwork_infer_param_5];
	ld.param.u64 	%rd8, [clockwork_infer_param_6];
	// begin inline asm
	mov.u64 %rd9, %globaltimer;
	// end inline asm
	mov.u32 	%r7, %tid.x;
	mov.u32 	%r8, %ctaid.x;
	or.b32  	%r9, %r8, %r7;
	setp.ne.s32 	%p1, %r9, 0;
	@%p1 bra 	$L__BB0_5;

	setp.eq.s32 	%p2, %r6, 0;
	setp.eq.s32 	%p3, %r12, -1;
	mov.f32 	%f8, 0f00000000;
	or.pred  	%p4, %p3, %p2;
	@%p4 bra 	$L__BB0_4;

	cvta.to.global.u64 	%rd2, %rd5;
	cvta.to.global.u64 	%rd3, %rd4;
	mov.f32 	%f8, 0f00000000;
	mov.u32 	%r11, 0;

$L__BB0_3:
	cvt.u64.u32 	%rd10, %r12;
	mul.lo.s64 	%rd11, %rd10, %rd6;
	shl.b64 	%rd12, %rd11, 2;
	add.s64 	%rd13, %rd3, %rd12;
	ld.global.nc.f32 	%f6, [%rd13];
	add.f32 	%f8, %f8, %f6;
	mul.wide.u32 	%rd14, %r12, 4;
	add.s64 	%rd15, %rd2, %rd14;
	add.s32 	%r11, %r11, 1;
	setp.lt.u32 	%p5, %r11, %r6;
	ld.global.nc.u32 	%r12, [%rd15];
	setp.ne.s32 	%p6, %r12, -1;
	and.pred  	%p7, %p6, %p5;
	@%p7 bra 	$L__BB0_3;

$L__BB0_4:
	cvta.to.global.u64 	%rd16, %rd8;
	st.global.f32 	[%rd16], %f8;

$L__BB0_5:
	// begin inline asm
	mov.u64 %rd17, %globaltimer;
	// end inline asm
	sub.s64 	%rd18, %rd17, %rd9;
	setp.lt.u64 	%p8, %rd18, %rd7;
	@%p8 bra 	$L__BB0_5;

	ret;

}
"#;

/// The kernel's entry point.
const KERNEL_NAME: &str = "clockwork_infer";
/// End of a model's page chain in the link table.
const NO_PAGE: u32 = u32::MAX;
/// Byte written throughout the emulated weights (0x3c3c3c3c is a small finite f32).
const WEIGHT_FILL: u8 = 0x3c;

fn driver(e: DriverError) -> GpuError {
    GpuError::Driver(format!("{e:?}"))
}

/// Devices the driver reports, after the presence gate. Never panics where panics unwind.
pub(crate) fn device_count() -> Result<usize, GpuError> {
    // SAFETY: `is_culib_present` only tries to dlopen the driver library under its
    // known names and drops the handle; it calls no driver function and touches no
    // cudarc state.
    if !unsafe { sys::is_culib_present() } {
        return Err(GpuError::DriverUnavailable);
    }
    match catch_unwind(CudaContext::device_count) {
        Err(_) => Err(GpuError::DriverUnavailable),
        Ok(Err(DriverError(sys::cudaError_enum::CUDA_ERROR_NO_DEVICE))) => Err(GpuError::NoDevice),
        Ok(Err(e)) => Err(driver(e)),
        Ok(Ok(n)) if n <= 0 => Err(GpuError::NoDevice),
        Ok(Ok(n)) => Ok(usize::try_from(n).unwrap_or(0)),
    }
}

/// The whole gate for a set of ordinals: driver, devices, ordinals, then the libraries
/// the real-model executor calls (cuDNN, cuBLASLt), before any of them is used.
pub(crate) fn check_ordinals(ordinals: &[usize]) -> Result<(), GpuError> {
    let count = device_count()?;
    if let Some(&ordinal) = ordinals.iter().find(|&&o| o >= count) {
        return Err(GpuError::BadOrdinal { ordinal, count });
    }
    crate::cuda_exec::libs::check().map_err(|e| GpuError::MissingLibrary(e.to_string()))
}

fn exec_error(e: ExecError) -> GpuError {
    GpuError::Model(e.to_string())
}

/// One timeline: a stream and its pair of timing events.
#[derive(Debug)]
struct Lane {
    stream: Arc<CudaStream>,
    start: CudaEvent,
    end: CudaEvent,
    busy: bool,
}

impl Lane {
    fn new(ctx: &Arc<CudaContext>) -> Result<Self, DriverError> {
        let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        Ok(Self {
            stream: ctx.new_stream()?,
            start: ctx.new_event(timing)?,
            end: ctx.new_event(timing)?,
            busy: false,
        })
    }
}

/// One CUDA device, owned by its engine thread.
#[derive(Debug)]
pub(crate) struct CudaDevice {
    // Declared first so that they are dropped first (fields drop in order), while the
    // streams the library handles were bound to still exist: graphs, then the models'
    // descriptors and buffers, then the handles.
    /// Graphs replaced by a LOAD while an INFER may still replay them: dropped once
    /// EXEC is idle.
    retired: Vec<Graph>,
    /// Models registered from ONNX files, executed for real.
    real: HashMap<ModelId, RealModel>,
    /// cuDNN, cuBLASLt, our kernels and the workspace (real models).
    libs: Libraries,
    /// The model of the INFER on EXEC (or last finished), when it is a real one.
    last_real: Option<ModelId>,
    ctx: Arc<CudaContext>,
    name: String,
    exec: Lane,
    pcie: Lane,
    kernel: CudaFunction,
    page_size: u64,
    total_pages: u32,
    slab: CudaSlice<u8>,
    next_page: CudaSlice<u32>,
    next_page_host: PinnedHostSlice<u32>,
    out: CudaSlice<f32>,
    host_weights: HashMap<ModelId, PinnedHostSlice<u8>>,
}

impl CudaDevice {
    /// Open CUDA device `ordinal` on the calling thread (which then drives it) and
    /// preallocate its page slab. Call [`check_ordinals`] first.
    pub(crate) fn new(ordinal: usize, total_pages: u32, page_size: u64) -> Result<Self, GpuError> {
        let ctx = catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| GpuError::DriverUnavailable)?
            .map_err(driver)?;
        // SAFETY: called right after the context was created and before anything was
        // allocated in it. From here on this engine orders all work itself: LOAD copies
        // are observed complete before an INFER reads those pages, host buffers are only
        // written while their stream is idle, and `Drop` synchronises the context
        // before any memory is freed.
        unsafe { ctx.disable_event_tracking() };
        let name = ctx.name().map_err(driver)?;
        let kernel = ctx
            .load_module(Ptx::from_src(KERNEL_PTX))
            .and_then(|m| m.load_function(KERNEL_NAME))
            .map_err(driver)?;
        let exec = Lane::new(&ctx).map_err(driver)?;
        let pcie = Lane::new(&ctx).map_err(driver)?;
        let slab_bytes = usize::try_from(u64::from(total_pages).saturating_mul(page_size))
            .map_err(|_| GpuError::InvalidConfig("cache larger than the address space".into()))?;
        let slab = pcie
            .stream
            .alloc_zeros::<u8>(slab_bytes.max(1))
            .map_err(driver)?;
        let table_len = total_pages.max(1) as usize;
        let next_page = pcie.stream.alloc_zeros::<u32>(table_len).map_err(driver)?;
        let out = exec.stream.alloc_zeros::<f32>(1).map_err(driver)?;
        let libs = Libraries::new(&ctx, &exec.stream).map_err(exec_error)?;
        // SAFETY: `alloc_pinned` returns uninitialised memory; it is fully written
        // (`fill`) before any read or copy.
        let mut next_page_host = unsafe { ctx.alloc_pinned::<u32>(table_len) }.map_err(driver)?;
        next_page_host.as_mut_slice().map_err(driver)?.fill(NO_PAGE);
        // Allocations (possibly stream-ordered) must finish before other streams use them.
        ctx.synchronize().map_err(driver)?;
        Ok(Self {
            ctx,
            name,
            exec,
            pcie,
            kernel,
            page_size,
            total_pages,
            slab,
            next_page,
            next_page_host,
            out,
            host_weights: HashMap::new(),
            libs,
            real: HashMap::new(),
            last_real: None,
            retired: Vec::new(),
        })
    }

    fn lane(&mut self, timeline: Timeline) -> &mut Lane {
        match timeline {
            Timeline::Exec => &mut self.exec,
            Timeline::Pcie => &mut self.pcie,
        }
    }
}

impl DeviceBackend for CudaDevice {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn emulated(&self) -> bool {
        false
    }

    fn register(&mut self, model: ModelId, profile: &ModelProfile) -> Result<(), GpuError> {
        if let ModelSource::Onnx { path } = &profile.source {
            let (real, image) = RealModel::new(
                &self.ctx,
                &self.exec.stream,
                &self.libs,
                profile,
                std::path::Path::new(path),
                self.page_size,
            )
            .map_err(exec_error)?;
            // SAFETY: uninitialised pinned memory, fully written by `copy_from_slice`
            // (the image has exactly `len` bytes) before use.
            let mut host =
                unsafe { self.ctx.alloc_pinned::<u8>(image.len().max(1)) }.map_err(driver)?;
            let dst = host.as_mut_slice().map_err(driver)?;
            dst.fill(0);
            dst[..image.len()].copy_from_slice(&image);
            self.host_weights.insert(model, host);
            self.real.insert(model, real);
            // Allocations (possibly stream-ordered) must finish before other streams use them.
            self.ctx.synchronize().map_err(driver)?;
            return Ok(());
        }
        let len = usize::try_from(profile.weights_bytes)
            .map_err(|_| GpuError::InvalidConfig("weights larger than the address space".into()))?
            .max(1);
        // SAFETY: uninitialised pinned memory, fully written by `fill` before use.
        let mut host = unsafe { self.ctx.alloc_pinned::<u8>(len) }.map_err(driver)?;
        host.as_mut_slice().map_err(driver)?.fill(WEIGHT_FILL);
        self.host_weights.insert(model, host);
        Ok(())
    }

    fn start_load(
        &mut self,
        model: ModelId,
        _profile: &ModelProfile,
        pages: &[u32],
        _now: Nanos,
    ) -> Result<(), GpuError> {
        let host = self
            .host_weights
            .get(&model)
            .ok_or_else(|| GpuError::Driver(format!("no host weights for {model}")))?;
        let weights = host.as_slice().map_err(driver)?;
        let mirror = self.next_page_host.as_mut_slice().map_err(driver)?;
        for (i, &p) in pages.iter().enumerate() {
            if let Some(slot) = mirror.get_mut(p as usize) {
                *slot = pages.get(i + 1).copied().unwrap_or(NO_PAGE);
            }
        }
        let mirror: &[u32] = mirror;
        let ps = usize::try_from(self.page_size).unwrap_or(usize::MAX);
        let stream = &self.pcie.stream;
        let (slab, _s) = self.slab.device_ptr(stream);
        let (table, _t) = self.next_page.device_ptr(stream);
        self.pcie.start.record(stream).map_err(driver)?;
        // SAFETY: (this copy and the page copies below) the destinations lie inside live allocations of this
        // context (`table` holds `mirror.len()` u32s; page `p < total_pages` spans
        // `[p*ps, (p+1)*ps)` of the `total_pages*ps`-byte slab and each chunk is at most
        // `ps` bytes). The sources are pinned host buffers owned by `self`, which are
        // neither moved nor freed nor written until this stream has passed the end
        // event (the mirror is written only while the PCIe lane is idle; `Drop`
        // synchronises first). The allocations finished at start-up (context sync).
        unsafe { result::memcpy_htod_async(table, mirror, stream.cu_stream()) }.map_err(driver)?;
        for (i, &p) in pages.iter().enumerate() {
            let lo = i.saturating_mul(ps);
            if lo >= weights.len() || p >= self.total_pages {
                break;
            }
            let chunk = &weights[lo..weights.len().min(lo + ps)];
            let dst = slab + u64::from(p) * self.page_size;
            // SAFETY: see above.
            unsafe { result::memcpy_htod_async(dst, chunk, stream.cu_stream()) }.map_err(driver)?;
        }
        if let Some(real) = self.real.get_mut(&model) {
            // The graphs are captured on the PCIe stream after the copies, so the LOAD's
            // measured time covers max(copies, capture). Capturing enqueues nothing.
            let old = real
                .capture(&self.libs, stream, pages, slab)
                .map_err(exec_error)?;
            self.retired.extend(old);
            if !self.exec.busy {
                self.retired.clear();
            }
        }
        self.pcie.end.record(stream).map_err(driver)?;
        self.pcie.busy = true;
        Ok(())
    }

    fn start_infer(
        &mut self,
        model: ModelId,
        profile: &ModelProfile,
        batch_index: usize,
        pages: &[u32],
        input: &[u8],
        _now: Nanos,
    ) -> Result<(), GpuError> {
        // EXEC is idle: no replay of a retired graph can be in flight.
        self.retired.clear();
        if let Some(real) = self.real.get_mut(&model) {
            real.stage_input(batch_index, input).map_err(exec_error)?;
            let stream = &self.exec.stream;
            self.exec.start.record(stream).map_err(driver)?;
            real.enqueue(batch_index, stream).map_err(exec_error)?;
            self.exec.end.record(stream).map_err(driver)?;
            self.exec.busy = true;
            self.last_real = Some(model);
            return Ok(());
        }
        self.last_real = None;
        let busy_ns = batch_exec_time(profile, batch_index)?.get();
        let first = pages.first().copied().unwrap_or(NO_PAGE);
        let n_pages = u32::try_from(pages.len()).unwrap_or(u32::MAX);
        let page_floats = self.page_size / 4;
        let stream = &self.exec.stream;
        let (slab, _s) = self.slab.device_ptr(stream);
        let (table, _t) = self.next_page.device_ptr(stream);
        let (out, _o) = self.out.device_ptr(stream);
        self.exec.start.record(stream).map_err(driver)?;
        let mut launch = stream.launch_builder(&self.kernel);
        launch
            .arg(&slab)
            .arg(&table)
            .arg(&first)
            .arg(&n_pages)
            .arg(&page_floats)
            .arg(&busy_ns)
            .arg(&out);
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (32, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match `clockwork_infer`'s parameters in order and size
        // (three device pointers as u64, u32, u32, u64, u64). The kernel reads
        // `slab[p * page_floats]` only for pages reached from `first` through the link
        // table, all `< total_pages` (written by the LOAD of this model, complete before
        // this INFER could start), and writes one float to `out`. All three
        // allocations outlive the launch (`Drop` synchronises first).
        unsafe { launch.launch(cfg) }.map_err(driver)?;
        self.exec.end.record(stream).map_err(driver)?;
        self.exec.busy = true;
        Ok(())
    }

    fn copy_output(&mut self, output: &mut [u8]) -> Result<(), GpuError> {
        if let Some(real) = self.last_real.and_then(|m| self.real.get(&m)) {
            return real.copy_output(output).map_err(exec_error);
        }
        // The stand-in kernel computes no outputs: zeros of the declared size.
        output.fill(0);
        Ok(())
    }

    fn poll(&mut self, timeline: Timeline, _now: Nanos) -> Option<Result<Nanos, GpuError>> {
        let lane = self.lane(timeline);
        if !lane.busy {
            return None;
        }
        match lane.end.try_is_complete() {
            Ok(false) => None,
            Ok(true) => {
                lane.busy = false;
                Some(
                    lane.start
                        .elapsed_ms(&lane.end)
                        .map(|ms| Nanos((f64::from(ms) * 1e6).round() as u64))
                        .map_err(driver),
                )
            }
            Err(e) => {
                lane.busy = false;
                Some(Err(driver(e)))
            }
        }
    }

    fn next_check(&self, _timeline: Timeline, now: Nanos) -> Nanos {
        now
    }

    fn abort(&mut self, timeline: Timeline) {
        let lane = self.lane(timeline);
        if let Err(e) = lane.stream.synchronize() {
            tracing::warn!(error = ?e, "stream synchronise failed during abort");
        }
        lane.busy = false;
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        // Nothing may still read or write the buffers freed after this.
        if let Err(e) = self.ctx.synchronize() {
            tracing::warn!(error = ?e, "context synchronise failed at device drop");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Here (no driver) the gate must answer with a clear error, not a panic. On a GPU
    /// machine it reports the devices instead.
    #[test]
    fn gate_never_panics() {
        match device_count() {
            Ok(n) => {
                assert!(n > 0);
                println!("CUDA devices: {n}");
            }
            Err(e) => {
                println!("no CUDA here: {e}");
                assert!(matches!(
                    e,
                    GpuError::DriverUnavailable | GpuError::NoDevice | GpuError::Driver(_)
                ));
            }
        }
    }

    #[test]
    fn shipped_ptx_has_the_kernel() {
        assert!(KERNEL_PTX.contains(".visible .entry clockwork_infer("));
        assert!(KERNEL_PTX.contains(".version 7.0") && KERNEL_PTX.contains(".target sm_70"));
        // Seven parameters, as `start_infer` pushes them.
        assert_eq!(KERNEL_PTX.matches(".param ").count(), 7);
        assert!(KERNEL_PTX.contains("%globaltimer"));
    }

    /// The source compiles wherever libnvrtc is present (no driver needed), to the same
    /// entry point and parameter list as the shipped PTX.
    #[test]
    fn kernel_source_still_compiles() {
        // SAFETY: a dlopen probe only.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            println!("libnvrtc not found; skipping the kernel compile check");
            return;
        }
        let opts = cudarc::nvrtc::CompileOptions {
            // NVRTC 13 (CUDA 13) accepts compute_75 and newer only; the shipped PTX
            // targets sm_70, which the drivers seen (580) still JIT-compile.
            arch: Some("compute_75"),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(KERNEL_SRC, opts).expect("kernel compiles");
        let src = ptx.to_src();
        let params = |p: &str| -> Vec<String> {
            p.lines()
                .filter(|l| l.trim_start().starts_with(".param "))
                .map(|l| l.trim().trim_end_matches(',').to_owned())
                .collect()
        };
        assert!(src.contains(".visible .entry clockwork_infer("));
        assert_eq!(params(&src), params(KERNEL_PTX));
    }
}
