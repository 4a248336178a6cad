//! Whether the CUDA libraries the executor needs can be loaded, checked before any of
//! their functions is called: cudarc loads them on first use and panics when one is
//! missing (and release builds abort on panic), so a missing library must be caught
//! here and reported as an error naming it.

use super::error::ExecError;

/// The libraries the executor calls, with the file names cudarc tries (for the message).
pub const REQUIRED: [(&str, &str); 3] = [
    ("the CUDA driver (libcuda)", "libcuda.so, libcuda.so.1"),
    ("cuDNN 9 (libcudnn)", "libcudnn.so, libcudnn.so.9"),
    (
        "cuBLASLt (libcublasLt)",
        "libcublasLt.so, libcublasLt.so.13, libcublasLt.so.12",
    ),
];

/// The first library of [`REQUIRED`] for which `present` says no, as an error.
pub fn first_missing(present: impl Fn(usize) -> bool) -> Result<(), ExecError> {
    match (0..REQUIRED.len()).find(|&i| !present(i)) {
        None => Ok(()),
        Some(i) => Err(ExecError::MissingLibrary {
            lib: REQUIRED[i].0,
            names: REQUIRED[i].1,
        }),
    }
}

/// Check that every library the executor calls can be loaded here.
#[cfg(feature = "cuda")]
pub fn check() -> Result<(), ExecError> {
    first_missing(|i| {
        // SAFETY: each probe only tries to dlopen the library under its known names and
        // drops the handle; it calls no function of it and touches no cudarc state.
        unsafe {
            match i {
                0 => cudarc::driver::sys::is_culib_present(),
                1 => cudarc::cudnn::sys::is_culib_present(),
                _ => cudarc::cublaslt::sys::is_culib_present(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_named_with_a_hint() {
        assert!(first_missing(|_| true).is_ok());
        let err = first_missing(|i| i != 1).unwrap_err().to_string();
        assert!(
            err.contains("cuDNN") && err.contains("libcudnn.so.9"),
            "{err}"
        );
        assert!(err.contains("LD_LIBRARY_PATH"), "{err}");
        let err = first_missing(|i| i == 0).unwrap_err().to_string();
        assert!(err.contains("cuDNN"), "the first missing one: {err}");
    }

    /// Here (CI: no driver, no cuDNN) the check answers with an error, never a panic.
    #[cfg(feature = "cuda")]
    #[test]
    fn check_never_panics() {
        match check() {
            Ok(()) => println!("CUDA driver, cuDNN and cuBLASLt are all loadable here"),
            Err(e) => {
                println!("{e}");
                assert!(matches!(e, ExecError::MissingLibrary { .. }));
            }
        }
    }
}
