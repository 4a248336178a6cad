//! Controller sessions: one controller at a time; an admitted one replaces the old.
//!
//! Each authenticated connection gets a new [`SessionId`]; results are tagged with the
//! session their action came on and delivered only while it is the current one, so the
//! results of an old session never reach a new one. Who is admitted is the shell's
//! decision, because it needs time: a second controller is refused while the connected
//! one is alive, and admitted (replacing it here) once that one has been silent for the
//! link timeout (docs/adr/0004-one-controller.md).
//!
//! The session also owns its clock mapping: each message's actions use the link's
//! offset estimate at arrival, or the identity (same clock) until the link has one,
//! which is logged once per session.

use crate::clock::ClockMap;

/// One controller connection, as the core knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SessionId(u64);

/// The current session, if any, and the next id to give out.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    current: Option<Current>,
    issued: u64,
}

#[derive(Debug)]
struct Current {
    id: SessionId,
    peer: String,
    /// Whether "no clock offset estimate yet" was logged.
    warned_no_offset: bool,
}

impl Sessions {
    /// A controller named `peer` connected: its session, and the session it replaced.
    pub(crate) fn open(&mut self, peer: &str) -> (SessionId, Option<SessionId>) {
        self.issued += 1;
        let id = SessionId(self.issued);
        let old = self.current.replace(Current {
            id,
            peer: peer.to_owned(),
            warned_no_offset: false,
        });
        match &old {
            Some(old) => tracing::warn!(
                new = %peer,
                old = %old.peer,
                "a new controller replaces the connected one; closing the old connection \
                 (results of its actions still in flight are dropped)"
            ),
            None => tracing::info!(controller = %peer, "controller connected"),
        }
        (id, old.map(|o| o.id))
    }

    /// `id`'s connection ended; if it was current, there is now no session.
    pub(crate) fn end(&mut self, id: SessionId) {
        if self.is_current(id) {
            if let Some(c) = self.current.take() {
                tracing::info!(
                    controller = %c.peer,
                    "controller disconnected; results of its actions still in flight will be dropped"
                );
            }
        }
    }

    /// End the current session (shutdown); returns it.
    pub(crate) fn close_current(&mut self) -> Option<SessionId> {
        self.current.take().map(|c| c.id)
    }

    /// Whether results for `id` may be delivered.
    pub(crate) fn is_current(&self, id: SessionId) -> bool {
        self.current.as_ref().is_some_and(|c| c.id == id)
    }

    /// The clock map for a message of `id` given the link's estimate; `None` when `id`
    /// is not the current session.
    pub(crate) fn clock(&mut self, id: SessionId, offset_ns: Option<i64>) -> Option<ClockMap> {
        let c = self.current.as_mut().filter(|c| c.id == id)?;
        Some(match offset_ns {
            Some(off) => ClockMap::new(off),
            None => {
                if !c.warned_no_offset {
                    c.warned_no_offset = true;
                    tracing::debug!(
                        controller = %c.peer,
                        "no clock offset estimate yet; using 0 (same clock) for now"
                    );
                }
                ClockMap::IDENTITY
            }
        })
    }
}
