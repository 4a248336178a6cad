//! The `clockwork-controller` binary refuses bad flags with a clear message and exit
//! status 2, before it listens or connects to anything.

use std::process::Command;

fn controller(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clockwork-controller"))
        .args(["--workers", "127.0.0.1:1", "--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .expect("run clockwork-controller");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_buffer_flags_are_refused_with_a_reason() {
    for (args, says) in [
        (
            &["--buffer-ms", "2", "--min-buffer-ms", "3"][..],
            "--min-buffer-ms must not exceed --buffer-ms",
        ),
        (&["--buffer-ms", "0"][..], "--buffer-ms must be a positive"),
        (
            &["--min-buffer-ms=-1"][..],
            "--min-buffer-ms must be a positive",
        ),
        (
            &["--slo-ms", "5", "--buffer-ms", "5", "--min-buffer-ms", "1"][..],
            "--buffer-ms must be below the default SLO",
        ),
        (&["--max-batch", "0"][..], "--max-batch must be at least 1"),
    ] {
        let (code, err) = controller(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
