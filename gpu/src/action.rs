//! What goes into a device and what comes out: [`DeviceAction`] in, [`Completion`] out.
//! Every action accepted by [`crate::DeviceSet::submit`] gets exactly one completion.
//! All times are local `CLOCK_MONOTONIC` nanoseconds; the worker translates to and from
//! the controller's clock.
//!
//! An INFER carries its host buffers: the batch's input bytes and the buffer its outputs
//! go into, both allocated by the submitter, so the device thread allocates nothing on
//! the INFER path. Both come back in the [`Completion`], whatever happened to the
//! INFER (the output filled when it succeeded), so the submitter can reuse them and the
//! device thread frees nothing either. Their `Debug` output shows only their lengths.

use clockwork_core::{
    ActionId, GpuId, Inferred, ModelId, Nanos, Outcome, Timing, Window, WorkerStatus,
};
use std::fmt;

/// One timed operation for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAction {
    /// Echoed by the completion.
    pub action: ActionId,
    /// The device.
    pub gpu: GpuId,
    /// When it may start (local clock, both bounds inclusive).
    pub window: Window,
    /// What to do.
    pub op: DeviceOp,
}

/// The operation of a [`DeviceAction`].
#[derive(Clone, PartialEq, Eq)]
pub enum DeviceOp {
    /// Copy a registered model's weights into the device's page cache (PCIe timeline).
    Load {
        /// The model.
        model: ModelId,
    },
    /// Free a model's pages. Takes no PCIe time: it is ordered with LOADs by `earliest`
    /// but may run while a LOAD's copy is in flight (superseding it when it is the same
    /// model).
    Unload {
        /// The model.
        model: ModelId,
    },
    /// Run one batch (EXEC timeline, one at a time per device).
    Infer {
        /// The model.
        model: ModelId,
        /// Requests in the batch; padded to the smallest supported size that holds them.
        batch_size: u32,
        /// The batch's concatenated input bytes, handed to the backend as they are;
        /// empty when the inputs are generated on the worker (the emulated load
        /// generator). The device does not interpret or check them.
        input: Vec<u8>,
        /// Where the outputs go: the device fills it when the batch succeeds and hands
        /// it back in [`Completion::output`]. Its length is the caller's choice
        /// (`output_bytes * batch_size` for every request's output, empty for none);
        /// the device fills exactly that many bytes and never reallocates it.
        output: Vec<u8>,
    },
}

impl DeviceOp {
    /// An INFER without input bytes and without an output buffer (outputs not wanted).
    pub fn infer(model: ModelId, batch_size: u32) -> Self {
        Self::Infer {
            model,
            batch_size,
            input: Vec::new(),
            output: Vec::new(),
        }
    }

    /// The model this operation is about.
    pub fn model(&self) -> ModelId {
        match *self {
            Self::Load { model } | Self::Unload { model } | Self::Infer { model, .. } => model,
        }
    }

    /// The kind, without its fields.
    pub fn kind(&self) -> OpKind {
        match self {
            Self::Load { .. } => OpKind::Load,
            Self::Unload { .. } => OpKind::Unload,
            Self::Infer { .. } => OpKind::Infer,
        }
    }

    /// Take an INFER's input and output buffers out (empty for other operations).
    pub(crate) fn take_buffers(&mut self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Self::Infer { input, output, .. } => (std::mem::take(input), std::mem::take(output)),
            Self::Load { .. } | Self::Unload { .. } => (Vec::new(), Vec::new()),
        }
    }
}

impl fmt::Debug for DeviceOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Load { model } => f.debug_struct("Load").field("model", model).finish(),
            Self::Unload { model } => f.debug_struct("Unload").field("model", model).finish(),
            Self::Infer {
                model,
                batch_size,
                input,
                output,
            } => f
                .debug_struct("Infer")
                .field("model", model)
                .field("batch_size", batch_size)
                .field("input_len", &input.len())
                .field("output_len", &output.len())
                .finish(),
        }
    }
}

/// The kind of a [`DeviceOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A weights copy.
    Load,
    /// A weights release.
    Unload,
    /// A batch execution.
    Infer,
}

impl OpKind {
    /// The kind's name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Load => "load",
            Self::Unload => "unload",
            Self::Infer => "infer",
        }
    }

    /// The status for an action of this kind that could not start by `latest`.
    pub fn too_late(self) -> WorkerStatus {
        match self {
            Self::Load => WorkerStatus::LoadTooLate,
            Self::Unload => WorkerStatus::UnloadTooLate,
            Self::Infer => WorkerStatus::ExecTooLate,
        }
    }

    /// The status for an action of this kind that names an unregistered model.
    pub fn unknown_model(self) -> WorkerStatus {
        match self {
            Self::Load => WorkerStatus::LoadUnknownModel,
            Self::Unload => WorkerStatus::UnloadUnknownModel,
            Self::Infer => WorkerStatus::UnknownModel,
        }
    }
}

/// The outcome of one [`DeviceAction`].
#[derive(Clone, PartialEq, Eq)]
pub struct Completion {
    /// The action.
    pub action: ActionId,
    /// The device it was for.
    pub gpu: GpuId,
    /// Its model.
    pub model: ModelId,
    /// Its kind.
    pub kind: OpKind,
    /// What happened.
    pub status: WorkerStatus,
    /// `begin`: local time it started (for an action that never ran: when it was
    /// refused); `end`: local time its completion was observed; `duration`: the
    /// device-measured time (CUDA events, or the emulated time), zero if it never ran.
    pub timing: Timing,
    /// For a successful INFER, the batch size actually executed; otherwise 0.
    pub padded_batch: u32,
    /// Whether the device is emulated.
    pub emulated: bool,
    /// A successful INFER's output buffer, filled: the one its [`DeviceOp::Infer`]
    /// brought, with the same length (an emulated device fills it with zeros). For an
    /// INFER that failed, was refused or was dropped, that buffer unfilled; empty for
    /// LOADs and UNLOADs.
    pub output: Vec<u8>,
    /// An INFER's input buffer, handed back for reuse whatever happened (its contents
    /// are what was sent); empty for LOADs and UNLOADs.
    pub input: Vec<u8>,
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("action", &self.action)
            .field("gpu", &self.gpu)
            .field("model", &self.model)
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("timing", &self.timing)
            .field("padded_batch", &self.padded_batch)
            .field("emulated", &self.emulated)
            .field("output_len", &self.output.len())
            .field("input_len", &self.input.len())
            .finish()
    }
}

impl Completion {
    /// The status and payload of the result a worker reports for this completion: the
    /// one mapping the worker and the simulator share. `to_controller` translates a
    /// local timing into the controller's clock (the identity in virtual time).
    pub fn into_outcome(self, to_controller: impl Fn(Timing) -> Timing) -> (WorkerStatus, Outcome) {
        let timing = to_controller(self.timing);
        let instant = |t: Nanos| Timing {
            begin: t,
            end: t,
            duration: Nanos::ZERO,
        };
        let outcome = match (self.status, self.kind) {
            (WorkerStatus::Success, OpKind::Load) => Outcome::Loaded { timing },
            (WorkerStatus::Success, OpKind::Unload) => Outcome::Unloaded { timing },
            // Inputs and outputs are not copied as separate stages yet: zero-length.
            (WorkerStatus::Success, OpKind::Infer) => Outcome::Inferred(Inferred {
                gpu: self.gpu,
                padded_batch: self.padded_batch,
                copy_input: instant(timing.begin),
                exec: timing,
                copy_output: instant(timing.end),
                gpu_clock_before_mhz: 0,
                gpu_clock_mhz: 0,
                outputs: self.output,
            }),
            (status, kind) => Outcome::Error {
                message: format!(
                    "{} of {} on {} failed: {status}",
                    kind.name(),
                    self.model,
                    self.gpu
                ),
            },
        };
        (self.status, outcome)
    }

    /// A completion for an action that did not run: refused, dropped or cancelled at
    /// `now`. An INFER's buffers go back in it, the output unfilled.
    pub(crate) fn refused(
        mut action: DeviceAction,
        status: WorkerStatus,
        now: Nanos,
        emulated: bool,
    ) -> Self {
        let (input, output) = action.op.take_buffers();
        Self {
            action: action.action,
            gpu: action.gpu,
            model: action.op.model(),
            kind: action.op.kind(),
            status,
            timing: Timing {
                begin: now,
                end: now,
                duration: Nanos::ZERO,
            },
            padded_batch: 0,
            emulated,
            output,
            input,
        }
    }
}
