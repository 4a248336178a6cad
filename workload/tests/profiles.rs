//! Model profiles from JSON, and instances spread over profiles.

use clockwork_core::model::{builtin_profiles, resnet50};
use clockwork_core::time::Nanos;
use clockwork_workload::profiles::{
    load_profiles, models_spread, parse_profiles, profiles_to_json, registration_runs, Spread,
};

const ONE: &str = r#"{ "profiles": [ {
    "name": "tiny", "weights_bytes": 1000, "input_bytes": 16, "output_bytes": 4,
    "load_ms": 0.5, "batches": [ { "batch_size": 1, "exec_ms": 1.25 }, { "batch_size": 4, "exec_ms": 2 } ]
} ] }"#;

fn err(text: &str) -> String {
    parse_profiles(text, "p.json").unwrap_err().to_string()
}

#[test]
fn profiles_parse_and_round_trip() {
    let p = parse_profiles(ONE, "p.json").unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].name, "tiny");
    assert_eq!(p[0].load_time, Nanos::from_micros(500));
    assert_eq!(p[0].batches[0].exec_time, Nanos::from_micros(1250));
    assert_eq!(p[0].exec_time(3), Some(Nanos::from_millis(2)));
    let builtins = builtin_profiles();
    let json = profiles_to_json(&builtins);
    assert_eq!(parse_profiles(&json, "builtins").unwrap(), builtins);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.json");
    std::fs::write(&path, &json).unwrap();
    assert_eq!(load_profiles(&path).unwrap()[1], resnet50());
    let e = load_profiles(&dir.path().join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.json"), "{e}");
}

#[test]
fn bad_profiles_are_clear_errors() {
    let e = err(&ONE.replace("\"load_ms\"", "\"load_msec\""));
    assert!(e.contains("unknown field `load_msec`"), "{e}");
    assert!(e.starts_with("p.json: "), "{e}");
    let e = err(&ONE.replace("\"input_bytes\": 16, ", ""));
    assert!(e.contains("missing field `input_bytes`"), "{e}");
    let e = err("{ \"profiles\": [ \n\n { ");
    assert!(e.contains("line 3"), "{e}");
    let e = err(&ONE.replace("\"batch_size\": 4", "\"batch_size\": 1"));
    assert!(
        e.contains("profile #0") && e.contains("strictly ascending"),
        "{e}"
    );
    let e = err(&ONE.replace("\"exec_ms\": 2", "\"exec_ms\": -2"));
    assert!(e.contains("exec_ms of batch 4 = -2 ms"), "{e}");
    let e = err(&ONE.replace("\"load_ms\": 0.5", "\"load_ms\": 0"));
    assert!(e.contains("load_ms = 0 ms"), "{e}");
    let e = err(&ONE.replace("\"name\": \"tiny\"", "\"name\": \"\""));
    assert!(e.contains("name is empty"), "{e}");
    let e = err(&ONE.replace("\"batches\": [ {", "\"batches\": [ ] , \"x\": [ {"));
    assert!(e.contains("unknown field `x`"), "{e}");
    let e = err(r#"{ "profiles": [] }"#);
    assert!(e.contains("empty"), "{e}");
    let json = profiles_to_json(&[resnet50(), resnet50()]);
    assert!(err(&json).contains("`resnet50_v2` is defined twice"));
}

#[test]
fn instances_spread_over_profiles() {
    let p = builtin_profiles();
    // The original's split: n / remaining for each profile in order.
    assert_eq!(
        models_spread(10, &p, Spread::Blocks),
        vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    );
    assert_eq!(
        models_spread(5, &p, Spread::RoundRobin),
        vec![0, 1, 2, 0, 1]
    );
    let s1 = models_spread(300, &p, Spread::Shuffled { seed: 1 });
    let s1b = models_spread(300, &p, Spread::Shuffled { seed: 1 });
    let s2 = models_spread(300, &p, Spread::Shuffled { seed: 2 });
    assert_eq!(s1, s1b);
    assert_ne!(s1, s2);
    assert_ne!(s1, models_spread(300, &p, Spread::Blocks));
    for k in 0..3 {
        assert_eq!(s1.iter().filter(|&&x| x == k).count(), 100);
    }
    // Shuffled: each third of the instances holds every profile.
    for chunk in s1.chunks(100) {
        for k in 0..3 {
            assert!(chunk.contains(&k));
        }
    }
    assert!(models_spread(4, &[], Spread::Blocks).is_empty());
    assert_eq!(
        registration_runs(&models_spread(10, &p, Spread::Blocks)),
        vec![(0, 3), (1, 3), (2, 4)]
    );
    assert_eq!(
        registration_runs(&[0, 1, 1, 0]),
        vec![(0, 1), (1, 2), (0, 1)]
    );
}
