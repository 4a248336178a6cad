//! Golden bytes: the exact frames of fixed messages are checked in, so any change to
//! the wire format (a field added, a type changed, an rkyv feature flipped by cargo
//! feature unification, an rkyv upgrade) fails here and must come with a
//! `PROTOCOL_VERSION` bump. Regenerate deliberately with `CLOCKWORK_BLESS=1`.

mod common;

use clockwork_core::wire::{FromWorker, ToWorker};
use clockwork_net::frame::FrameEncoder;
use common::*;
use std::fmt::Write as _;
use std::path::PathBuf;

fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in bytes.chunks(32).enumerate() {
        let _ = write!(s, "{:06x}:", i * 32);
        for b in chunk {
            let _ = write!(s, " {b:02x}");
        }
        s.push('\n');
    }
    s
}

fn check(name: &str, bytes: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.hex"));
    let actual = hex(bytes);
    if std::env::var_os("CLOCKWORK_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with CLOCKWORK_BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "wire format of `{name}` changed: bump PROTOCOL_VERSION and re-bless deliberately"
    );
}

#[test]
fn wire_format_is_pinned() {
    let mut enc = FrameEncoder::new();
    let ts = 0x0102_0304_0506_0708;
    check("hello", enc.encode(&hello("tok"), ts, -5).unwrap());
    check(
        "hello_reply",
        enc.encode(&reply_accepted(), ts, 17).unwrap(),
    );
    check(
        "to_worker",
        enc.encode(&ToWorker::Actions(all_actions()), ts, 0)
            .unwrap(),
    );
    let results = all_results();
    for (i, r) in results.into_iter().enumerate() {
        check(
            &format!("from_worker_{i}"),
            enc.encode(&FromWorker::Result(r), ts, 0).unwrap(),
        );
    }
    for (i, r) in all_client_requests().into_iter().enumerate() {
        check(
            &format!("client_request_{i}"),
            enc.encode(&r, ts, 0).unwrap(),
        );
    }
    for (i, r) in all_client_responses().into_iter().enumerate() {
        check(
            &format!("client_response_{i}"),
            enc.encode(&r, ts, 0).unwrap(),
        );
    }
}

#[test]
fn header_layout_is_as_documented() {
    let mut enc = FrameEncoder::new();
    let f = enc
        .encode(&hello("tok"), 0x1122_3344_5566_7788, -2)
        .unwrap();
    assert_eq!(&f[0..4], b"CLWK");
    assert_eq!(
        u16::from_le_bytes([f[4], f[5]]),
        clockwork_core::wire::PROTOCOL_VERSION
    );
    assert_eq!(
        u16::from_le_bytes([f[6], f[7]]),
        clockwork_core::wire::MessageKind::Hello as u16
    );
    assert_eq!(
        u64::from_le_bytes(f[16..24].try_into().unwrap()),
        0x1122_3344_5566_7788
    );
    assert_eq!(i64::from_le_bytes(f[24..32].try_into().unwrap()), -2);
    assert_eq!(f.len() % 16, 0);
}
