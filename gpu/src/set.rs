//! [`DeviceSet`]: starts the engine threads, routes actions and registrations to them, and
//! answers state queries from the devices' published snapshots. Dropping it stops every
//! engine; queued and running actions complete with `Cancelled`.

use crate::action::DeviceAction;
use crate::config::{Backend, DeviceConfig};
use crate::cpu::CpuDevice;
use crate::device::Device;
use crate::emulated::EmulatedDevice;
use crate::engine::{engine_main, Command, EngineParts};
use crate::error::{GpuError, SubmitError};
use crate::handoff::{Completions, EngineSignal, Outbox};
use crate::snapshot::Snapshot;
use atomic_waker::AtomicWaker;
use clockwork_core::{GpuId, GpuState, ModelId, ModelProfile};
use std::collections::HashMap;
use std::fmt;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// The devices of one worker, each driven by an engine thread.
pub struct DeviceSet {
    engines: Vec<EngineHandle>,
    /// Per GPU id: (engine index, device index within that engine).
    routes: Vec<(usize, u32)>,
    snapshots: Vec<Arc<Snapshot>>,
    models: HashMap<ModelId, Arc<ModelProfile>>,
    page_size: u64,
    total_pages: u32,
    /// CPU devices: they run real models and refuse emulated ones.
    computes: bool,
}

struct EngineHandle {
    ring: rtrb::Producer<Command>,
    signal: Arc<EngineSignal>,
    thread: Option<JoinHandle<()>>,
}

impl EngineHandle {
    fn notify(&self) {
        if let Some(t) = &self.thread {
            self.signal.notify(t.thread());
        }
    }
}

impl DeviceSet {
    /// Start the devices. Returns the set (to submit to) and the completion stream
    /// (to receive from; move it wherever completions are handled).
    ///
    /// Fails with [`GpuError::NotCompiledWithCuda`], [`GpuError::DriverUnavailable`] or
    /// [`GpuError::NoDevice`] when CUDA is asked for but cannot be had; never panics.
    pub fn start(config: DeviceConfig) -> Result<(Self, Completions), GpuError> {
        config.validate()?;
        let total_pages = config.total_pages();
        let page_size = config.page_size;
        match &config.backend {
            &Backend::Emulated {
                devices,
                engine_threads,
                noise,
                seed,
            } => {
                let n = engine_threads.min(devices as usize).max(1);
                let routes = (0..devices)
                    .map(|d| (d as usize % n, d / n as u32))
                    .collect();
                let makers = (0..n).map(|e| {
                    move || {
                        let devs = (0..devices)
                            .filter(|d| *d as usize % n == e)
                            .map(|d| {
                                let backend = EmulatedDevice::new(d, noise, seed);
                                Device::new(GpuId(d), backend, total_pages, page_size)
                            })
                            .collect();
                        Ok(devs)
                    }
                });
                Self::spawn(&config, routes, makers.collect())
            }
            Backend::Cuda { ordinals } => Self::start_cuda(&config, ordinals),
            Backend::Cpu { cores } => {
                let routes = (0..cores.len()).map(|e| (e, 0)).collect();
                let makers = cores
                    .iter()
                    .enumerate()
                    .map(|(i, &core)| {
                        move || {
                            let index = u32::try_from(i).unwrap_or(u32::MAX);
                            let backend = CpuDevice::new(index, core)?;
                            Ok(vec![Device::new(
                                GpuId(index),
                                backend,
                                total_pages,
                                page_size,
                            )])
                        }
                    })
                    .collect();
                let mut config = config.clone();
                config.cpus.clone_from(cores);
                let (mut set, completions) = Self::spawn(&config, routes, makers)?;
                set.computes = true;
                Ok((set, completions))
            }
        }
    }

    #[cfg(feature = "cuda")]
    fn start_cuda(
        config: &DeviceConfig,
        ordinals: &[usize],
    ) -> Result<(Self, Completions), GpuError> {
        crate::cuda::check_ordinals(ordinals)?;
        let (total_pages, page_size) = (config.total_pages(), config.page_size);
        let routes = (0..ordinals.len()).map(|e| (e, 0)).collect();
        let makers = ordinals
            .iter()
            .enumerate()
            .map(|(i, &ordinal)| {
                move || {
                    let id = GpuId(u32::try_from(i).unwrap_or(u32::MAX));
                    let backend = crate::cuda::CudaDevice::new(ordinal, total_pages, page_size)?;
                    Ok(vec![Device::new(id, backend, total_pages, page_size)])
                }
            })
            .collect();
        Self::spawn(config, routes, makers)
    }

    #[cfg(not(feature = "cuda"))]
    fn start_cuda(_: &DeviceConfig, _: &[usize]) -> Result<(Self, Completions), GpuError> {
        Err(GpuError::NotCompiledWithCuda)
    }

    /// Spawn one engine per maker and wait until each reports its devices ready.
    fn spawn<B, F>(
        config: &DeviceConfig,
        routes: Vec<(usize, u32)>,
        makers: Vec<F>,
    ) -> Result<(Self, Completions), GpuError>
    where
        B: crate::backend::DeviceBackend,
        F: FnOnce() -> Result<Vec<Device<B>>, GpuError> + Send + 'static,
    {
        let waker = Arc::new(AtomicWaker::new());
        let mut set = Self {
            engines: Vec::with_capacity(makers.len()),
            routes,
            snapshots: Vec::new(),
            models: HashMap::new(),
            page_size: config.page_size,
            total_pages: config.total_pages(),
            computes: false,
        };
        let mut consumers = Vec::with_capacity(makers.len());
        let mut readies = Vec::with_capacity(makers.len());
        for (e, make) in makers.into_iter().enumerate() {
            let (ring, inbox) = rtrb::RingBuffer::new(config.ring_capacity);
            let (out_ring, consumer) = rtrb::RingBuffer::new(config.completion_capacity);
            let signal = Arc::new(EngineSignal::default());
            let parts = EngineParts {
                inbox,
                outbox: Outbox::new(out_ring, Arc::clone(&waker)),
                signal: Arc::clone(&signal),
                cpu: config.cpus.get(e).copied(),
                spin: config.spin,
            };
            let (ready_tx, ready_rx) = mpsc::sync_channel(1);
            let thread = std::thread::Builder::new()
                .name(format!("cw-gpu-engine-{e}"))
                .spawn(move || engine_main(parts, make, ready_tx))?;
            set.engines.push(EngineHandle {
                ring,
                signal,
                thread: Some(thread),
            });
            consumers.push(consumer);
            readies.push(ready_rx);
        }
        // Snapshots in engine order; reorder them by GPU id below. On error, dropping
        // `set` stops the engines already started.
        let mut per_engine = Vec::with_capacity(readies.len());
        for rx in readies {
            per_engine.push(rx.recv().map_err(|_| GpuError::Stopped)??);
        }
        let mut snapshots = Vec::with_capacity(set.routes.len());
        for &(e, local) in &set.routes {
            let snap = per_engine
                .get(e)
                .and_then(|s| s.get(local as usize))
                .ok_or_else(|| GpuError::InvalidConfig("device routing mismatch".into()))?;
            snapshots.push(Arc::clone(snap));
        }
        set.snapshots = snapshots;
        Ok((set, Completions::new(consumers, waker)))
    }

    /// Register (or re-register identically) a model on every device. Returns the pages
    /// its weights take. Registration is ordered with actions: any action submitted
    /// after this call sees the model. CPU devices refuse an emulated model
    /// ([`GpuError::EmulatedModelOnCpu`]); they import a real one's file in the
    /// background (a file that cannot be imported fails its LOADs).
    pub fn register_model(
        &mut self,
        model: ModelId,
        profile: ModelProfile,
    ) -> Result<u32, GpuError> {
        profile
            .validate()
            .map_err(|source| GpuError::InvalidProfile { model, source })?;
        if self.computes && !profile.is_real() {
            return Err(GpuError::EmulatedModelOnCpu(model));
        }
        let pages = profile.pages(self.page_size);
        if let Some(known) = self.models.get(&model) {
            return if **known == profile {
                Ok(pages)
            } else {
                Err(GpuError::ModelConflict(model))
            };
        }
        // All or nothing: this is the only producer, so free slots can only grow.
        if self.engines.iter().any(|e| e.ring.is_abandoned()) {
            return Err(GpuError::Stopped);
        }
        if self.engines.iter().any(|e| e.ring.slots() == 0) {
            return Err(GpuError::Full);
        }
        let profile = Arc::new(profile);
        for e in &mut self.engines {
            let cmd = Command::Register {
                model,
                profile: Arc::clone(&profile),
            };
            if e.ring.push(cmd).is_err() {
                debug_assert!(false, "slot checked above");
                return Err(GpuError::Full);
            }
            e.notify();
        }
        self.models.insert(model, profile);
        Ok(pages)
    }

    /// Hand an action to its device. Every `Ok` gets exactly one completion; an `Err`
    /// gets none (the action never reached a device).
    pub fn submit(&mut self, action: DeviceAction) -> Result<(), SubmitError> {
        let Some(&(e, local)) = self.routes.get(action.gpu.get() as usize) else {
            return Err(SubmitError::InvalidGpu(action.gpu));
        };
        let engine = &mut self.engines[e];
        if engine.ring.is_abandoned() {
            return Err(SubmitError::Stopped);
        }
        match engine.ring.push(Command::Action { local, action }) {
            Ok(()) => {
                engine.notify();
                Ok(())
            }
            // The ring hands back what was pushed: the action, buffers included.
            Err(rtrb::PushError::Full(cmd)) => match cmd {
                Command::Action { action, .. } => Err(SubmitError::Full(action)),
                Command::Register { .. } => Err(SubmitError::Stopped),
            },
        }
    }

    /// Every device's cache state, as of the last action its engine processed.
    pub fn state(&self) -> Vec<GpuState> {
        self.snapshots.iter().map(|s| s.read()).collect()
    }

    /// Whether the devices really compute (CPU devices): real models only, measured at
    /// registration by the worker.
    pub fn computes(&self) -> bool {
        self.computes
    }

    /// Number of devices (GPU ids are `0..gpu_count()`).
    pub fn gpu_count(&self) -> usize {
        self.routes.len()
    }

    /// Weights-cache page size in bytes.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Pages per device.
    pub fn total_pages(&self) -> u32 {
        self.total_pages
    }

    /// The registered models.
    pub fn models(&self) -> impl Iterator<Item = (ModelId, &ModelProfile)> + '_ {
        self.models.iter().map(|(id, p)| (*id, &**p))
    }

    /// The profile of one registered model.
    pub fn profile(&self, model: ModelId) -> Option<&ModelProfile> {
        self.models.get(&model).map(|p| &**p)
    }

    /// Stop every engine and wait for them (the same as dropping the set).
    pub fn shutdown(self) {}
}

impl Drop for DeviceSet {
    fn drop(&mut self) {
        for e in &self.engines {
            if let Some(t) = &e.thread {
                e.signal.request_shutdown(t.thread());
            }
        }
        for e in &mut self.engines {
            if let Some(t) = e.thread.take() {
                if t.join().is_err() {
                    tracing::error!("a device engine thread panicked");
                }
            }
        }
    }
}

impl fmt::Debug for DeviceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSet")
            .field("gpus", &self.routes.len())
            .field("engines", &self.engines.len())
            .field("models", &self.models.len())
            .field("page_size", &self.page_size)
            .field("total_pages", &self.total_pages)
            .finish()
    }
}
