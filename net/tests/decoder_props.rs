//! Property tests of the frame decoder: whatever bytes arrive, in whatever chunks, it
//! never panics, never reads past what it was given, returns exactly the frames that
//! were sent, and turns any corruption into an error (never into a different message).

mod common;

use clockwork_core::wire::{FromWorker, ToWorker};
use clockwork_core::ClientRequest;
use clockwork_net::frame::{FrameEncoder, RecvBuffer, DEFAULT_MAX_FRAME};
use common::*;
use proptest::prelude::*;

/// A stream of valid frames and the send timestamps that identify them.
fn stream_of(n: usize) -> (Vec<u8>, Vec<u64>) {
    let mut enc = FrameEncoder::new();
    let mut bytes = Vec::new();
    let mut ids = Vec::new();
    let actions = all_actions();
    let results = all_results();
    let reqs = all_client_requests();
    for i in 0..n {
        let ts = 1000 + i as u64;
        let f = match i % 3 {
            0 => enc.encode(
                &ToWorker::Actions(vec![actions[i % actions.len()].clone()]),
                ts,
                0,
            ),
            1 => enc.encode(
                &FromWorker::Result(results[i % results.len()].clone()),
                ts,
                0,
            ),
            _ => enc.encode::<ClientRequest>(&reqs[i % reqs.len()], ts, 0),
        };
        bytes.extend_from_slice(f.unwrap());
        ids.push(ts);
    }
    (bytes, ids)
}

/// Feed `bytes` in chunks of the given sizes; collect frame ids until the first error.
fn feed(bytes: &[u8], chunks: &[usize]) -> (Vec<u64>, Option<String>) {
    let mut rb = RecvBuffer::new(DEFAULT_MAX_FRAME);
    let mut seen = Vec::new();
    let mut off = 0;
    let mut ci = 0;
    while off < bytes.len() {
        let want = chunks
            .get(ci % chunks.len().max(1))
            .copied()
            .unwrap_or(7)
            .max(1);
        ci += 1;
        let spare = rb.spare();
        let n = want.min(spare.len()).min(bytes.len() - off);
        spare[..n].copy_from_slice(&bytes[off..off + n]);
        rb.commit(n);
        off += n;
        loop {
            match rb.next_frame() {
                Ok(Some(f)) => {
                    // Every frame that passes the checksum must also validate as its kind.
                    let ok = match f.kind() {
                        Some(clockwork_core::wire::MessageKind::ToWorker) => {
                            f.access::<ToWorker>().is_ok()
                        }
                        Some(clockwork_core::wire::MessageKind::FromWorker) => {
                            f.access::<FromWorker>().is_ok()
                        }
                        Some(clockwork_core::wire::MessageKind::ClientRequest) => {
                            f.access::<ClientRequest>().is_ok()
                        }
                        _ => false,
                    };
                    if !ok {
                        return (seen, Some("invalid payload".into()));
                    }
                    seen.push(f.header.send_ts);
                }
                Ok(None) => break,
                Err(e) => return (seen, Some(e.to_string())),
            }
        }
    }
    // End of stream: bytes left over are a truncated frame.
    match rb.eof_error() {
        clockwork_net::NetError::Closed => (seen, None),
        e => (seen, Some(e.to_string())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_yields_the_same_frames(n in 1usize..20, chunks in prop::collection::vec(1usize..200, 1..20)) {
        let (bytes, ids) = stream_of(n);
        let (seen, err) = feed(&bytes, &chunks);
        prop_assert_eq!(err, None);
        prop_assert_eq!(seen, ids);
    }

    #[test]
    fn corruption_is_an_error_never_a_different_message(n in 1usize..10, pos in any::<prop::sample::Index>(), mask in 1u8..=255, chunks in prop::collection::vec(1usize..300, 1..8)) {
        let (mut bytes, ids) = stream_of(n);
        let p = pos.index(bytes.len());
        bytes[p] ^= mask;
        let (seen, err) = feed(&bytes, &chunks);
        // Frames before the corrupted one arrive intact and in order.
        prop_assert!(ids.starts_with(&seen));
        // Corruption inside padding is harmless (padding is not covered); anywhere else
        // the stream must stop with an error before the corrupted frame is delivered.
        if err.is_none() {
            prop_assert_eq!(&seen, &ids);
        } else {
            prop_assert!(seen.len() < ids.len());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), chunks in prop::collection::vec(1usize..512, 1..8)) {
        let _ = feed(&bytes, &chunks);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(len in 0u32..100_000, body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let (mut bytes, _) = stream_of(1);
        bytes.truncate(32);
        bytes[8..12].copy_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&body);
        let (seen, _) = feed(&bytes, &[64]);
        prop_assert!(seen.is_empty());
    }
}
