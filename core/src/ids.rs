//! Identifiers. Each is a newtype so that a model id can never be passed where a GPU
//! id is expected; all are plain integers on the wire.

// rkyv generates a resolver type per id that has no Debug impl.
#![allow(missing_debug_implementations)]

use rkyv::{Archive, Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $archived:ident, $int:ty, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Archive, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            Default,
        )]
        #[rkyv(derive(Debug, PartialEq, Eq, Hash))]
        pub struct $name(pub $int);

        impl $name {
            /// The raw integer.
            pub const fn get(self) -> $int {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        impl $archived {
            /// The native id this archived id stands for.
            pub fn to_native(&self) -> $name {
                $name(self.0.to_native())
            }
        }
    };
}

id_type!(
    /// A model instance known to the controller. Copies of one network are distinct models.
    ModelId, ArchivedModelId, u32, "m"
);
id_type!(
    /// A client request. Chosen by the client, unique per client connection.
    RequestId, ArchivedRequestId, u64, "r"
);
id_type!(
    /// An action sent by the controller to a worker; results echo it.
    ActionId, ArchivedActionId, u64, "a"
);
id_type!(
    /// A worker process, as numbered by the controller.
    WorkerId, ArchivedWorkerId, u32, "w"
);
id_type!(
    /// A GPU (device) within one worker, numbered from 0.
    GpuId, ArchivedGpuId, u32, "g"
);
