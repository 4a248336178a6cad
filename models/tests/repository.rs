//! Scanning a model repository: highest version served, per-entry errors that never stop
//! the others, config files applied or refused.

use std::fs;

use clockwork_core::Nanos;
use clockwork_models::repository::CONFIG_FILE;
use clockwork_models::{
    write_entry, EntryError, ImportError, ImportLimits, ModelKind, Precision, Repository,
};

#[test]
fn scan_reports_every_entry_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let identity = ModelKind::Identity.onnx_bytes(1);
    // Several versions: 10 beats 2 beats 1 (numeric, not lexical); "latest" is ignored.
    write_entry(root, "multi", 1, b"old version, never read", None).unwrap();
    write_entry(root, "multi", 2, b"old version, never read", None).unwrap();
    write_entry(root, "multi", 10, &identity, None).unwrap();
    fs::create_dir_all(root.join("multi").join("latest")).unwrap();
    // Highest version lacks model.onnx: an error, not a fallback to version 1.
    write_entry(root, "half_copied", 1, &identity, None).unwrap();
    fs::create_dir_all(root.join("half_copied").join("2")).unwrap();
    // No version at all.
    fs::create_dir_all(root.join("empty")).unwrap();
    // A config file that is not valid.
    write_entry(root, "bad_config", 1, &identity, None).unwrap();
    fs::write(
        root.join("bad_config").join(CONFIG_FILE),
        r#"{"max_batch_size": 0}"#,
    )
    .unwrap();
    // A good config.
    write_entry(root, "configured", 3, &identity, None).unwrap();
    fs::write(
        root.join("configured").join(CONFIG_FILE),
        r#"{"allowed_batch_sizes": [1, 4], "default_slo_ms": 25, "copies": 2, "precision": "fp16"}"#,
    )
    .unwrap();
    // An invalid model name, a hidden directory and a plain file.
    fs::create_dir_all(root.join("bad name").join("1")).unwrap();
    fs::create_dir_all(root.join(".cache").join("1")).unwrap();
    fs::write(root.join("README.txt"), "not a model").unwrap();
    // A model file that does not import: found by the scan, refused at load.
    write_entry(root, "garbage", 1, b"garbage", None).unwrap();

    let repo = Repository::open(root).unwrap();
    let scanned = repo.scan().unwrap();
    let names: Vec<String> = scanned
        .iter()
        .map(|r| match r {
            Ok(e) => e.name.clone(),
            Err(e) => e.name().to_owned(),
        })
        .collect();
    assert_eq!(
        names,
        [
            "bad name",
            "bad_config",
            "configured",
            "empty",
            "garbage",
            "half_copied",
            "multi"
        ]
    );

    let by_name = |name: &str| {
        scanned
            .iter()
            .find(|r| r.as_ref().map_or_else(|e| e.name(), |e| &e.name) == name)
            .unwrap()
    };
    assert!(matches!(
        by_name("bad name"),
        Err(EntryError::InvalidName { .. })
    ));
    match by_name("bad_config") {
        Err(EntryError::Config { error, .. }) => {
            assert!(error.0.contains("max_batch_size"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    let configured = by_name("configured").as_ref().unwrap();
    assert_eq!(configured.version, 3);
    assert_eq!(configured.config.allowed_batch_sizes, vec![1, 4]);
    assert_eq!(configured.config.max_batch_size, 4);
    assert_eq!(configured.config.default_slo, Nanos::from_millis(25));
    assert_eq!(configured.config.copies, 2);
    assert_eq!(configured.config.precision, Precision::Fp16);
    assert!(matches!(
        by_name("empty"),
        Err(EntryError::NoVersion { .. })
    ));
    match by_name("half_copied") {
        Err(EntryError::MissingModelFile { version, .. }) => assert_eq!(*version, 2),
        other => panic!("{other:?}"),
    }
    let multi = by_name("multi").as_ref().unwrap();
    assert_eq!(multi.version, 10);
    assert_eq!(
        multi.model_path,
        root.join("multi").join("10").join("model.onnx")
    );
    assert_eq!(
        multi.config.max_batch_size, 16,
        "defaults without a config file"
    );
    assert!(by_name("garbage").is_ok());

    // Loading by name.
    let (entry, model) = repo.load("multi", &ImportLimits::default()).unwrap();
    assert_eq!(entry.version, 10);
    assert_eq!(model.metadata().name, "multi");
    assert_eq!(model.metadata().inputs[0].shape, vec![-1, 16]);
    let err = repo.load("garbage", &ImportLimits::default()).unwrap_err();
    assert!(
        matches!(err, EntryError::Import(ImportError::InvalidOnnx { .. })),
        "{err}"
    );
    assert_eq!(err.name(), "garbage");
    assert!(matches!(
        repo.load("absent", &ImportLimits::default()),
        Err(EntryError::NotFound { .. })
    ));
    assert!(matches!(
        repo.entry("../multi"),
        Err(EntryError::InvalidName { .. })
    ));
    assert!(matches!(
        repo.entry("README.txt"),
        Err(EntryError::NotFound { .. })
    ));
}

#[test]
fn a_missing_repository_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Repository::open(dir.path().join("nope")).is_err());
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    assert!(Repository::open(&file).is_err());
}
