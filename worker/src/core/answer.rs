//! A device completion becomes its action's result: timings back in the controller's
//! clock (through the clock map the action's window was converted with), a successful
//! INFER's output buffer moved into `Inferred.outputs` (one `output_bytes` slice per
//! request, in batch order: the buffer was sized so), and any failure an error naming
//! what failed. Completions of CLEAR CACHE unloads, and LOADs a CLEAR CACHE waits for,
//! count towards that CLEAR CACHE instead.

use super::{Devices, WorkerCore};
use crate::clock::ClockMap;
use clockwork_core::{Inferred, Nanos, Outcome, Timing, WorkerStatus};
use clockwork_gpu::{Completion, OpKind};

impl<D: Devices> WorkerCore<D> {
    /// A device completion arrived: answer its action, or count it towards its CLEAR
    /// CACHE. Results of a session that is no longer current are dropped.
    pub(crate) fn completion(&mut self, c: Completion) {
        let Some(p) = self.pending.remove(&c.action.get()) else {
            tracing::warn!(tag = %c.action, "completion for no pending action");
            return;
        };
        if let Some(group) = p.clear_group {
            // Not in cache: the model was already gone, or the unload superseded a LOAD
            // (which then fails with 54 and frees its pages). Both leave it cleared.
            let cleared = matches!(
                c.status,
                WorkerStatus::Success | WorkerStatus::UnloadNotInCache
            );
            let failure =
                (!cleared).then(|| format!("unload {} on {}: {}", c.model, c.gpu, c.status));
            return self.clear_part_done(group, failure);
        }
        let (status, outcome) = outcome_of(c, p.reply.clock);
        self.answer(p.reply, status, outcome);
        for &group in &p.awaited_by {
            // The LOAD has ended (superseded, or failed on its own): its pages are free.
            // Its own result goes first, then any CLEAR CACHE it completes.
            self.clear_part_done(group, None);
        }
    }
}

/// The status and payload of a completed device action.
pub(crate) fn outcome_of(c: Completion, clock: ClockMap) -> (WorkerStatus, Outcome) {
    let timing = clock.timing_to_controller(c.timing);
    let outcome = match (c.status, c.kind) {
        (WorkerStatus::Success, OpKind::Load) => Outcome::Loaded { timing },
        (WorkerStatus::Success, OpKind::Unload) => Outcome::Unloaded { timing },
        (WorkerStatus::Success, OpKind::Infer) => Outcome::Inferred(Inferred {
            gpu: c.gpu,
            padded_batch: c.padded_batch,
            copy_input: instant(timing.begin),
            exec: timing,
            copy_output: instant(timing.end),
            gpu_clock_before_mhz: 0,
            gpu_clock_mhz: 0,
            outputs: c.output,
        }),
        (status, kind) => Outcome::Error {
            message: format!(
                "{} of {} on {} failed: {status}",
                kind_name(kind),
                c.model,
                c.gpu
            ),
        },
    };
    (c.status, outcome)
}

/// A zero-length stage at `t` (inputs and outputs are not copied separately yet).
fn instant(t: Nanos) -> Timing {
    Timing {
        begin: t,
        end: t,
        duration: Nanos::ZERO,
    }
}

/// The kind's name in messages.
pub(crate) fn kind_name(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Load => "load",
        OpKind::Unload => "unload",
        OpKind::Infer => "infer",
    }
}
