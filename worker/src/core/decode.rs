//! Reading one action out of the archived `ToWorker` message, in place, and the checks
//! of what only the wire can get wrong, each made here and nowhere else: the window of
//! the actions the worker answers itself (REGISTER, GET STATE, CLEAR CACHE: validated,
//! never waited for), a profile that cannot be read, and an INFER's inputs
//! (`input_sizes` must be empty with no `inputs`, or one size per request summing to
//! `inputs.len()`). GPU id, model, batch size and the window of device actions are
//! checked by the devices (see the table in [`crate::core`]).
//!
//! Only what the devices need leaves the frame: an INFER's input bytes stay in it (a
//! borrowed slice) until the core copies them once, into a buffer of its pool that
//! travels to the device; everything else is small.

use clockwork_core::action::{ArchivedAction, ArchivedActionKind};
use clockwork_core::{GpuId, ModelId, ModelProfile, Window, WorkerStatus};

/// A well-formed action, out of its frame.
#[derive(Debug, PartialEq)]
pub(crate) enum Request<'a> {
    /// Register a model.
    Register {
        model: ModelId,
        count: u32,
        profile: ModelProfile,
    },
    /// Report devices and models.
    GetState,
    /// Unload everything on every device.
    ClearCache,
    /// Something for one device, its window still in the controller's clock.
    Device {
        gpu: GpuId,
        window: Window,
        request: DeviceRequest<'a>,
    },
}

/// The device operations, as the wire asks for them.
#[derive(Debug, PartialEq)]
pub(crate) enum DeviceRequest<'a> {
    Load {
        model: ModelId,
    },
    Unload {
        model: ModelId,
    },
    Infer {
        model: ModelId,
        batch_size: u32,
        /// The concatenated inputs, in the frame (empty when the worker generates them).
        input: &'a [u8],
    },
}

/// Why an action is refused before it reaches anything.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: WorkerStatus,
    pub(crate) message: String,
}

impl Refusal {
    fn new(status: WorkerStatus, message: String) -> Self {
        Self { status, message }
    }
}

/// Read and check one action.
pub(crate) fn decode<'a>(a: &'a ArchivedAction) -> Result<Request<'a>, Refusal> {
    let window = a.window.to_native();
    let worker_side = |request: Request<'static>| {
        if window.is_valid() {
            Ok(request)
        } else {
            Err(Refusal::new(
                WorkerStatus::InvalidAction,
                format!(
                    "inverted window: earliest {} is after latest {}",
                    window.earliest.get(),
                    window.latest.get()
                ),
            ))
        }
    };
    let device = |gpu: GpuId, request: DeviceRequest<'a>| {
        Ok(Request::Device {
            gpu,
            window,
            request,
        })
    };
    match &a.kind {
        ArchivedActionKind::RegisterModel {
            model,
            count,
            profile,
        } => {
            let (model, count) = (model.to_native(), count.to_native());
            if count == 0 || model.0.checked_add(count - 1).is_none() {
                return Err(Refusal::new(
                    WorkerStatus::InvalidAction,
                    format!("register {model}: {count} instances do not fit the id space"),
                ));
            }
            let profile =
                rkyv::deserialize::<ModelProfile, rkyv::rancor::Error>(profile).map_err(|e| {
                    Refusal::new(
                        WorkerStatus::InvalidAction,
                        format!("register {model}: unreadable profile: {e}"),
                    )
                })?;
            worker_side(Request::Register {
                model,
                count,
                profile,
            })
        }
        ArchivedActionKind::GetState => worker_side(Request::GetState),
        ArchivedActionKind::ClearCache => worker_side(Request::ClearCache),
        ArchivedActionKind::LoadWeights { model, gpu, .. } => device(
            gpu.to_native(),
            DeviceRequest::Load {
                model: model.to_native(),
            },
        ),
        ArchivedActionKind::Unload { model, gpu } => device(
            gpu.to_native(),
            DeviceRequest::Unload {
                model: model.to_native(),
            },
        ),
        ArchivedActionKind::Infer {
            model,
            gpu,
            batch_size,
            input_sizes,
            inputs,
            ..
        } => {
            let (model, batch_size) = (model.to_native(), batch_size.to_native());
            let sizes = input_sizes.iter().map(|s| s.to_native());
            check_inputs(sizes, batch_size, inputs.len()).map_err(|m| {
                Refusal::new(WorkerStatus::InvalidInput, format!("infer of {model}: {m}"))
            })?;
            device(
                gpu.to_native(),
                DeviceRequest::Infer {
                    model,
                    batch_size,
                    input: inputs.as_slice(),
                },
            )
        }
    }
}

/// `sizes` (one per request, or none when the worker generates inputs) against the
/// batch size and the number of input bytes sent.
fn check_inputs(
    sizes: impl ExactSizeIterator<Item = u32>,
    batch_size: u32,
    input_bytes: usize,
) -> Result<(), String> {
    let count = sizes.len();
    let total: u64 = sizes.map(u64::from).sum();
    if count == 0 {
        return if input_bytes == 0 {
            Ok(())
        } else {
            Err(format!("{input_bytes} input bytes but no input_sizes"))
        };
    }
    if count as u64 != u64::from(batch_size) {
        return Err(format!("{count} input sizes for a batch of {batch_size}"));
    }
    if total != input_bytes as u64 {
        return Err(format!(
            "input sizes sum to {total} bytes but {input_bytes} input bytes were sent"
        ));
    }
    Ok(())
}
