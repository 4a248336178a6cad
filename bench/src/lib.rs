//! `clockwork-bench` as a library: the run reports ([`report`]) and the virtual-time
//! simulator's named scenarios ([`scenario`], §6.2 and §6.5), built from the workload
//! library `clockwork-workload` so that the main job, the simulator and the tests replay
//! exactly the same seeded arrivals. The `clockwork-bench` binary holds the benchmarks
//! themselves. It does not own the workload generators (`clockwork-workload`), the
//! simulator (`clockwork-sim`) or the scheduler (`clockwork-scheduler`).

#![warn(missing_docs, missing_debug_implementations)]

pub mod report;
pub mod scenario;
