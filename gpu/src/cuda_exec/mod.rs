//! The CUDA executor for real models: runs a [`crate::cuda_plan::Plan`] on an NVIDIA GPU
//! with cuDNN (NHWC convolutions with fused bias and ReLU, pooling), cuBLASLt (GEMMs with
//! bias/ReLU epilogues) and our own element-wise kernels, recorded once per (model,
//! batch size) into a CUDA graph that each INFER replays.
//!
//! It owns, in pure functions that CI tests without a driver: the translation of a
//! plan's steps into launches and the refusal of steps the libraries cannot run as
//! planned ([`Schedule`]), the descriptors' contents ([`descriptors`]), the kernels'
//! PTX, grids and argument lists ([`kernels`]), and the weights' host image and device
//! addresses in the model's pages ([`weights`]). Behind the `cuda` feature it owns the
//! library handles, descriptors, algorithms, workspace, arena and graphs
//! (`device.rs`) and the check that the libraries are installed (`libs.rs`).
//!
//! It does not own the page cache, the LOAD copies or the timing of INFERs: the CUDA
//! backend (`crate::cuda`) does, and calls into it.

pub mod descriptors;
#[cfg(feature = "cuda")]
pub(crate) mod device;
mod error;
pub mod kernels;
pub mod libs;
#[cfg(feature = "cuda")]
pub(crate) mod model;
mod schedule;
pub mod weights;

pub use error::ExecError;
pub use schedule::{workspace_bytes, Launch, Schedule};
