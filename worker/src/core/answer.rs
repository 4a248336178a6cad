//! A device completion becomes its action's result: timings back in the controller's
//! clock (through the clock map the action's window was converted with), a successful
//! INFER's output buffer moved into `Inferred.outputs` (one `output_bytes` slice per
//! request, in batch order: the buffer was sized so), and any failure an error naming
//! what failed. Completions of CLEAR CACHE unloads, and LOADs a CLEAR CACHE waits for,
//! count towards that CLEAR CACHE instead.

use super::{Devices, WorkerCore};
use clockwork_core::WorkerStatus;
use clockwork_gpu::Completion;

impl<D: Devices> WorkerCore<D> {
    /// A device completion arrived: answer its action, or count it towards its CLEAR
    /// CACHE. Results of a session that is no longer current are dropped.
    pub(crate) fn completion(&mut self, mut c: Completion) {
        // The INFER's buffers go back to the pool: the input always, the output unless
        // it carries the result's outputs (then the writer gives it back once sent).
        self.buffers.give(std::mem::take(&mut c.input));
        if c.status != WorkerStatus::Success {
            self.buffers.give(std::mem::take(&mut c.output));
        }
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
        let clock = p.reply.clock;
        let (status, outcome) = c.into_outcome(|t| clock.timing_to_controller(t));
        self.answer(p.reply, status, outcome);
        for &group in &p.awaited_by {
            // The LOAD has ended (superseded, or failed on its own): its pages are free.
            // Its own result goes first, then any CLEAR CACHE it completes.
            self.clear_part_done(group, None);
        }
    }
}
