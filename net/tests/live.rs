//! The transport on live glommio TCP connections over loopback: every message kind
//! round-trips, bad frames close only their own connection with a named reason, and
//! the handshake refuses wrong versions and tokens in words.

mod common;

use clockwork_core::wire::{FromWorker, HelloReply, PeerRole, ToWorker, PROTOCOL_VERSION};
use clockwork_core::{ClientRequest, ClientResponse};
use clockwork_net::frame::{FrameEncoder, HEADER_LEN};
use clockwork_net::runtime::{run_here, ExecutorConfig};
use clockwork_net::{connect, Decode, Encode, NetError, TcpConnection};
use common::*;
use glommio::net::TcpStream;
use rkyv::rancor::BoxedError;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

fn run<T: Send + 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
    run_here(ExecutorConfig::named("net-test"), f).expect("executor runs")
}

async fn client(addr: SocketAddr) -> TcpConnection {
    connect(addr, PeerRole::Client, &link("client"))
        .await
        .expect("handshake")
        .0
}

async fn round_trip<T>(conn: &mut TcpConnection, msg: &T)
where
    T: Encode + Decode + PartialEq + Debug,
    T::Archived: rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<BoxedError>>,
{
    conn.send(msg).await.unwrap();
    let back = conn.recv_msg::<T>().await.unwrap();
    let back: T = rkyv::deserialize::<T, BoxedError>(back).unwrap();
    assert_eq!(&back, msg);
}

/// Every action kind, the INFER carrying 1,000,000 input bytes.
fn actions_with_1mb_infer() -> Vec<clockwork_core::Action> {
    let mut actions = all_actions();
    if let clockwork_core::ActionKind::Infer {
        inputs,
        input_sizes,
        ..
    } = &mut actions[3].kind
    {
        *inputs = vec![3u8; 1_000_000].into();
        *input_sizes = vec![1_000_000];
    }
    actions
}

#[test]
fn every_message_kind_round_trips() {
    run(async {
        let (addr, _log) = spawn_echo_server();
        let mut conn = client(addr).await;
        for a in all_actions() {
            round_trip(&mut conn, &ToWorker::Actions(vec![a])).await;
        }
        round_trip(&mut conn, &ToWorker::Actions(all_actions())).await;
        for r in all_results() {
            round_trip(&mut conn, &FromWorker::Result(r)).await;
        }
        for r in all_client_requests() {
            round_trip::<ClientRequest>(&mut conn, &r).await;
        }
        for r in all_client_responses() {
            round_trip::<ClientResponse>(&mut conn, &r).await;
        }
        round_trip(&mut conn, &hello(TOKEN)).await;
        round_trip(&mut conn, &reply_accepted()).await;
        round_trip(
            &mut conn,
            &HelloReply::Rejected {
                reason: "no".into(),
            },
        )
        .await;
    });
}

#[test]
fn large_payload_round_trips() {
    run(async {
        let (addr, _log) = spawn_echo_server();
        let mut conn = client(addr).await;
        let mut actions = all_actions();
        if let clockwork_core::ActionKind::Infer {
            inputs,
            input_sizes,
            ..
        } = &mut actions[3].kind
        {
            *inputs = (0..2_000_000u32)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>()
                .into();
            *input_sizes = vec![2_000_000];
        }
        round_trip(&mut conn, &ToWorker::Actions(actions)).await;
    });
}

/// A worker link (the controller's role) keeps the receive buffer a large INFER grew,
/// on both ends, instead of allocating and zeroing a new one for each; a client link
/// gives it back, since a client may sit idle for hours after one large request.
#[test]
fn worker_links_keep_a_grown_receive_buffer_and_client_links_do_not() {
    run(async {
        for (role, keeps) in [(PeerRole::Controller, true), (PeerRole::Client, false)] {
            let (addr, _log) = spawn_echo_server_for(role);
            let (mut conn, _) = connect(addr, role, &link("client")).await.unwrap();
            round_trip(&mut conn, &ToWorker::Actions(actions_with_1mb_infer())).await;
            // A small frame after it: the big one's buffer is released, or kept.
            round_trip(&mut conn, &ToWorker::Actions(Vec::new())).await;
            let kept = conn.receive_capacity();
            assert_eq!(kept >= 1_000_000, keeps, "{role:?}: {kept} bytes kept");
        }
    });
}

/// Open a raw TCP connection that has completed the handshake, for injecting bytes.
async fn raw_after_handshake(addr: SocketAddr) -> TcpStream {
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut enc = FrameEncoder::new();
    s.write_all(enc.encode(&hello(TOKEN), 1, i64::MAX).unwrap())
        .await
        .unwrap();
    // The accepted reply: header + payload; read the header, then the padded payload.
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).await.unwrap();
    let len = u32::from_le_bytes(h[8..12].try_into().unwrap()) as usize;
    let mut p = vec![0u8; len.div_ceil(16) * 16];
    s.read_exact(&mut p).await.unwrap();
    s
}

/// Send `bytes` on a fresh authenticated connection, then see how the server ended it;
/// meanwhile a good connection must keep working.
async fn inject(bytes: Vec<u8>, close_after: bool) -> String {
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, log) = spawn_echo_server();
    let mut good = client(addr).await;
    round_trip(&mut good, &ToWorker::Actions(all_actions())).await;
    let mut bad = raw_after_handshake(addr).await;
    bad.write_all(&bytes).await.unwrap();
    if close_after {
        bad.close().await.unwrap();
    }
    // The server must close the bad connection: our read sees EOF (or a reset).
    let mut sink = [0u8; 256];
    let closed = futures_lite::future::or(
        async {
            loop {
                match bad.read(&mut sink).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => continue,
                }
            }
        },
        async {
            glommio::timer::sleep(Duration::from_secs(5)).await;
            false
        },
    )
    .await;
    assert!(closed, "server did not close the bad connection");
    // The good connection is unaffected.
    for r in all_results() {
        round_trip(&mut good, &FromWorker::Result(r)).await;
    }
    let ended = log.borrow().ended.clone();
    assert_eq!(ended.len(), 1, "exactly one connection ended: {ended:?}");
    ended[0].clone()
}

fn good_frame() -> Vec<u8> {
    FrameEncoder::new()
        .encode(&ToWorker::Actions(all_actions()), 5, 0)
        .unwrap()
        .to_vec()
}

#[test]
fn truncated_frame_closes_only_its_connection() {
    let reason = run(async {
        let f = good_frame();
        inject(f[..f.len() / 2].to_vec(), true).await
    });
    assert!(reason.contains("closed mid-frame"), "{reason}");
}

#[test]
fn bit_flipped_frame_closes_only_its_connection() {
    let reason = run(async {
        let mut f = good_frame();
        f[HEADER_LEN + 40] ^= 0x10;
        inject(f, false).await
    });
    assert!(reason.contains("checksum"), "{reason}");
}

#[test]
fn wrong_magic_closes_only_its_connection() {
    let reason = run(async {
        let mut f = good_frame();
        f[0..4].copy_from_slice(b"HTTP");
        inject(f, false).await
    });
    assert!(reason.contains("bad magic"), "{reason}");
}

#[test]
fn oversized_length_closes_only_its_connection_without_allocating() {
    let reason = run(async {
        let mut f = good_frame();
        f[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        inject(f[..HEADER_LEN].to_vec(), false).await
    });
    assert!(reason.contains("exceeds"), "{reason}");
}

#[test]
fn a_message_over_the_links_limit_is_not_sent_and_the_link_goes_on() {
    let (err, limit) = run(async {
        let (addr, log) = spawn_echo_server();
        let mut conn = client(addr).await;
        let small = ToWorker::Actions(vec![all_actions().remove(0)]);
        let mut big = all_actions();
        while big.len() < 200 {
            big.extend(all_actions());
        }
        conn.set_max_frame(4096);
        let err = conn.send(&ToWorker::Actions(big)).await.unwrap_err();
        // Nothing of it went out: the link still carries messages both ways.
        round_trip(&mut conn, &small).await;
        assert!(log.borrow().ended.is_empty(), "{:?}", log.borrow().ended);
        (err, 4096)
    });
    match err {
        NetError::Oversized { len, max } => assert!(len > 4096 && max == limit, "{len} {max}"),
        e => panic!("not Oversized: {e}"),
    }
}

#[test]
fn wrong_version_mid_stream_closes_only_its_connection() {
    let reason = run(async {
        let mut f = good_frame();
        f[4..6].copy_from_slice(&(PROTOCOL_VERSION + 1).to_le_bytes());
        inject(f, false).await
    });
    assert!(reason.contains("version mismatch"), "{reason}");
}

#[test]
fn garbage_that_checksums_but_does_not_validate_closes_its_connection() {
    // A frame whose header and checksum are right but whose payload is not a valid
    // archive: rkyv validation at the trust boundary must catch it.
    let reason = run(async {
        let mut f = good_frame();
        let len = u32::from_le_bytes(f[8..12].try_into().unwrap()) as usize;
        for b in &mut f[HEADER_LEN..HEADER_LEN + len] {
            *b = 0xff;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&f[0..12]);
        h.update(&f[16..HEADER_LEN]);
        h.update(&f[HEADER_LEN..HEADER_LEN + len]);
        let crc = h.finalize();
        f[12..16].copy_from_slice(&crc.to_le_bytes());
        inject(f, false).await
    });
    assert!(reason.contains("invalid payload"), "{reason}");
}

#[test]
fn bad_token_is_refused_in_words() {
    let (client_err, server_reason) = run(async {
        let (addr, log) = spawn_echo_server();
        let cfg = clockwork_net::LinkConfig::new("wrong-token", "intruder");
        let err = connect(addr, PeerRole::Client, &cfg).await.err().unwrap();
        glommio::timer::sleep(Duration::from_millis(20)).await;
        // Another client still gets in.
        let mut good = client(addr).await;
        round_trip(&mut good, &ToWorker::Actions(all_actions())).await;
        let reason = log.borrow().ended.first().cloned().unwrap_or_default();
        (err.to_string(), reason)
    });
    assert!(
        client_err.contains("rejected") && client_err.contains("token"),
        "{client_err}"
    );
    assert!(server_reason.contains("token"), "{server_reason}");
}

#[test]
fn wrong_role_is_refused() {
    let err = run(async {
        let (addr, _log) = spawn_echo_server();
        connect(addr, PeerRole::Controller, &link("ctl"))
            .await
            .err()
            .unwrap()
            .to_string()
    });
    assert!(err.contains("this port serves"), "{err}");
}

#[test]
fn hello_of_another_version_gets_a_readable_refusal() {
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
    let (reply_err, server_reason) = run(async {
        let (addr, log) = spawn_echo_server();
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut f = FrameEncoder::new()
            .encode(&hello(TOKEN), 1, 0)
            .unwrap()
            .to_vec();
        f[4..6].copy_from_slice(&(PROTOCOL_VERSION + 3).to_le_bytes());
        s.write_all(&f).await.unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).await.unwrap();
        // The refusal is a well-formed frame of our version that says why.
        let mut rb = clockwork_net::frame::RecvBuffer::new(1 << 20);
        rb.spare()[..reply.len()].copy_from_slice(&reply);
        rb.commit(reply.len());
        let frame = rb.next_frame().unwrap().unwrap();
        let msg = match frame.access::<HelloReply>().unwrap() {
            clockwork_core::wire::ArchivedHelloReply::Rejected { reason } => reason.to_string(),
            _ => panic!("accepted a wrong version"),
        };
        glommio::timer::sleep(Duration::from_millis(20)).await;
        let reason = log.borrow().ended.first().cloned().unwrap_or_default();
        (msg, reason)
    });
    assert!(reply_err.contains("version mismatch"), "{reply_err}");
    assert!(
        server_reason.contains("version mismatch"),
        "{server_reason}"
    );
}

#[test]
fn silent_peer_times_out_the_handshake() {
    let err = run(async {
        let listener = clockwork_net::Listener::bind(
            "127.0.0.1:0".parse().unwrap(),
            PeerRole::Client,
            clockwork_net::LinkConfig {
                handshake_timeout: Duration::from_millis(100),
                ..link("server")
            },
        )
        .unwrap();
        let addr = listener.local_addr().unwrap();
        let _idle = glommio::spawn_local(async move { TcpStream::connect(addr).await.unwrap() });
        let stream = listener.accept().await.unwrap();
        listener.handshake(stream).await.err().unwrap()
    });
    assert!(matches!(err, NetError::Timeout(_)), "{err}");
}

#[test]
fn clock_offset_on_loopback_is_within_half_the_rtt() {
    let (offset, rtt) = run(async {
        let (addr, _log) = spawn_echo_server();
        let mut conn = client(addr).await;
        for _ in 0..200 {
            round_trip(&mut conn, &ToWorker::Actions(vec![])).await;
        }
        let c = conn.clock();
        (c.offset_ns().unwrap(), c.rtt_ns().unwrap())
    });
    // Same host, same clock: the true offset is 0, so the estimate's error is |offset|.
    assert!(rtt > 0);
    assert!(
        offset.unsigned_abs() <= rtt / 2,
        "offset {offset} ns, rtt {rtt} ns"
    );
}

#[test]
fn busy_polling_link_delivers_the_same_frames() {
    run(async {
        let (addr, _log) = spawn_echo_server();
        let mut conn = client(addr).await;
        conn.set_busy_poll(Duration::from_micros(100));
        for _ in 0..50 {
            for a in all_actions() {
                round_trip(&mut conn, &ToWorker::Actions(vec![a])).await;
            }
        }
        // A large frame arrives in many reads, partly by polling, partly by waiting.
        round_trip(&mut conn, &ToWorker::Actions(actions_with_1mb_infer())).await;
    });
}
