//! `clockwork-bench make-model`: the entry it writes is a servable repository model, and
//! bad arguments are refused in words without writing anything.

use clockwork_models::{ImportLimits, Repository};
use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clockwork-bench"))
}

#[test]
fn writes_a_repository_entry_that_imports() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench()
        .args(["make-model", "small-cnn", "--seed", "3", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed.trim().ends_with("small_cnn/1/model.onnx"),
        "{printed}"
    );
    let repo = Repository::open(dir.path()).unwrap();
    let (entry, model) = repo.load("small_cnn", &ImportLimits::default()).unwrap();
    assert_eq!(entry.name, "small_cnn");
    let meta = model.metadata();
    assert_eq!(meta.inputs.len(), 1);
    assert_eq!(meta.inputs[0].datatype.to_string(), "FP32");
    assert_eq!(meta.inputs[0].shape.first(), Some(&-1));
    assert!(meta.weight_bytes > 0);
    // The same seed writes the same bytes; another seed other weights.
    let write = |seed: &str| {
        let d = tempfile::tempdir().unwrap();
        let st = bench()
            .args(["make-model", "small_cnn", "--seed", seed, "--out"])
            .arg(d.path())
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read(d.path().join("small_cnn/1/model.onnx")).unwrap()
    };
    let a = std::fs::read(dir.path().join("small_cnn/1/model.onnx")).unwrap();
    assert_eq!(a, write("3"));
    assert_ne!(a, write("4"));
}

#[test]
fn bad_kinds_and_names_are_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench()
        .args(["make-model", "vgg", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown model kind `vgg`"), "{err}");
    let out = bench()
        .args(["make-model", "identity", "--name", "../escape", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a valid model name"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
