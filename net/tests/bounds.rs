//! What a connection may cost, on live glommio TCP over loopback: listeners are
//! exclusive (no `SO_REUSEPORT`), a full listener refuses in words, an unauthenticated
//! peer cannot announce a big frame, a half-sent frame is closed after the frame
//! timeout, and a silent link is noticed by the liveness watchdog.

mod common;

use clockwork_core::wire::PeerRole;
use clockwork_net::frame::{FrameEncoder, NO_DELTA};
use clockwork_net::liveness::watch;
use clockwork_net::runtime::{run_here, ExecutorConfig};
use clockwork_net::{connect, Listener, NetError};
use common::*;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::time::{Duration, Instant};

fn run<T: Send + 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
    run_here(ExecutorConfig::named("net-bounds"), f).expect("executor runs")
}

#[test]
fn a_second_listener_on_the_same_address_is_refused() {
    let kind = run(async {
        let a = Listener::bind("127.0.0.1:0".parse().unwrap(), PeerRole::Client, link("a"))
            .expect("first bind");
        let addr = a.local_addr().unwrap();
        match Listener::bind(addr, PeerRole::Client, link("b")) {
            Ok(_) => panic!("two listeners on {addr}"),
            Err(NetError::Io(e)) => e.kind(),
            Err(e) => panic!("unexpected error {e}"),
        }
    });
    assert_eq!(kind, std::io::ErrorKind::AddrInUse);
}

#[test]
fn a_full_listener_refuses_in_words_and_admits_again_once_a_slot_frees() {
    let (refused, again) = run(async {
        let mut cfg = link("server");
        cfg.max_connections = 1;
        let l = std::rc::Rc::new(
            Listener::bind("127.0.0.1:0".parse().unwrap(), PeerRole::Client, cfg).unwrap(),
        );
        let addr = l.local_addr().unwrap();
        let l2 = std::rc::Rc::clone(&l);
        glommio::spawn_local(async move {
            loop {
                let Ok(inc) = l2.accept().await else { return };
                let l3 = std::rc::Rc::clone(&l2);
                glommio::spawn_local(async move {
                    if let Ok((mut conn, _)) = l3.handshake(inc).await {
                        // Hold the connection until the peer goes.
                        while conn.recv().await.is_ok() {}
                    }
                })
                .detach();
            }
        })
        .detach();
        let first = connect(addr, PeerRole::Client, &link("c1"))
            .await
            .expect("first");
        let refused = match connect(addr, PeerRole::Client, &link("c2")).await {
            Err(e) => e.to_string(),
            Ok(_) => String::from("admitted"),
        };
        drop(first);
        // The slot frees once the server's reader sees the close.
        let mut again = false;
        for _ in 0..100 {
            glommio::timer::sleep(Duration::from_millis(10)).await;
            if connect(addr, PeerRole::Client, &link("c3")).await.is_ok() {
                again = true;
                break;
            }
        }
        (refused, again)
    });
    assert!(refused.contains("connection limit"), "{refused}");
    assert!(again, "a freed slot was not reused");
}

#[test]
fn an_unauthenticated_peer_cannot_announce_a_big_frame() {
    let err = run(async {
        let l =
            Listener::bind("127.0.0.1:0".parse().unwrap(), PeerRole::Client, link("s")).unwrap();
        let addr = l.local_addr().unwrap();
        let peer = glommio::spawn_local(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // A valid hello header claiming a 16 MiB payload.
            let mut enc = FrameEncoder::new();
            let mut bytes = enc.encode(&hello(TOKEN), 0, NO_DELTA).unwrap().to_vec();
            bytes[8..12].copy_from_slice(&(16u32 << 20).to_le_bytes());
            s.write_all(&bytes).await.unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        });
        let inc = l.accept().await.unwrap();
        let e = l.handshake(inc).await.err().unwrap();
        peer.await;
        e
    });
    assert!(
        matches!(err, NetError::Oversized { max: 4096, .. }),
        "{err}"
    );
}

#[test]
fn a_half_sent_frame_is_closed_after_the_frame_timeout() {
    let (err, took) = run(async {
        let mut cfg = link("s");
        cfg.frame_timeout = Duration::from_millis(200);
        cfg.handshake_timeout = Duration::from_secs(30);
        let l = Listener::bind("127.0.0.1:0".parse().unwrap(), PeerRole::Client, cfg).unwrap();
        let addr = l.local_addr().unwrap();
        let _peer = glommio::spawn_local(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut enc = FrameEncoder::new();
            let bytes = enc.encode(&hello(TOKEN), 0, NO_DELTA).unwrap().to_vec();
            s.write_all(&bytes[..40]).await.unwrap();
            glommio::timer::sleep(Duration::from_secs(20)).await;
        });
        let inc = l.accept().await.unwrap();
        let t = Instant::now();
        let e = l.handshake(inc).await.err().unwrap();
        (e, t.elapsed())
    });
    assert!(matches!(err, NetError::Timeout(_)), "{err}");
    // Closed by the frame timeout, not the (30 s) handshake timeout.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn a_silent_link_is_noticed_and_a_talking_one_is_not() {
    let (silent, talking) = run(async {
        let l =
            Listener::bind("127.0.0.1:0".parse().unwrap(), PeerRole::Client, link("s")).unwrap();
        let addr = l.local_addr().unwrap();
        let client = glommio::spawn_local(async move {
            let (mut conn, _) = connect(addr, PeerRole::Client, &link("c")).await.unwrap();
            // Talk for a while, then fall silent (but keep the socket open).
            for _ in 0..6 {
                conn.send(&hello(TOKEN)).await.unwrap();
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            glommio::timer::sleep(Duration::from_secs(5)).await;
            drop(conn);
        });
        let inc = l.accept().await.unwrap();
        let (mut conn, _) = l.handshake(inc).await.unwrap();
        let activity = conn.activity();
        let timeout = Duration::from_millis(200);
        let t = Instant::now();
        let read = async {
            loop {
                if conn.recv().await.is_err() {
                    return None;
                }
            }
        };
        let verdict =
            futures_lite::future::or(read, async { Some(watch(activity, timeout).await) }).await;
        let talked_for = t.elapsed();
        drop(client);
        (verdict, talked_for)
    });
    let silent = silent.expect("the watchdog fired");
    assert!(
        matches!(silent, NetError::Silent { silent_ms } if silent_ms >= 200),
        "{silent}"
    );
    // It did not fire while the peer was talking (6 frames, 50 ms apart).
    assert!(
        talking >= Duration::from_millis(250),
        "fired after {talking:?}"
    );
}

#[test]
fn a_token_mismatch_is_named_on_both_sides() {
    let (client_err, server_err) = run(async {
        let l =
            Listener::bind("127.0.0.1:0".parse().unwrap(), PeerRole::Client, link("s")).unwrap();
        let addr = l.local_addr().unwrap();
        let c = glommio::spawn_local(async move {
            let cfg = clockwork_net::LinkConfig::new("another-token", "c");
            connect(addr, PeerRole::Client, &cfg)
                .await
                .err()
                .unwrap()
                .to_string()
        });
        let inc = l.accept().await.unwrap();
        let s = l.handshake(inc).await.err().unwrap().to_string();
        (c.await, s)
    });
    assert!(
        client_err.contains("cluster token mismatch"),
        "{client_err}"
    );
    assert!(
        server_err.contains("cluster token mismatch"),
        "{server_err}"
    );
}
