//! A frame-aware TCP proxy between a controller and a worker, for fault tests: it
//! forwards whole frames (header, then payload and padding, as `clockwork-net` frames
//! them), and on command stops forwarding (a stalled link: the sockets stay open, TCP
//! says nothing) or drops every frame (a lossy link), then heals.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

const HEADER: usize = 32;

/// What the proxy does with frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forward every frame.
    Forward = 0,
    /// Forward nothing and read nothing: bytes pile up in the kernel's buffers.
    Stall = 1,
    /// Read every frame and drop it.
    Drop = 2,
}

#[derive(Debug, Default)]
struct State {
    mode: AtomicU8,
    dropped: AtomicU64,
}

/// A running proxy; it serves until the process ends.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Proxy {
    /// Listen on a free loopback port and forward each connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { continue };
                let Ok(up) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = down.set_nodelay(true);
                let _ = up.set_nodelay(true);
                for (from, to) in [(&down, &up), (&up, &down)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    let st = Arc::clone(&st);
                    std::thread::spawn(move || pump(from, to, &st));
                }
            }
        });
        Self { addr, state }
    }

    /// Switch what the proxy does with frames from now on.
    pub fn set(&self, mode: Mode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::SeqCst)
    }
}

fn mode(st: &State) -> Mode {
    match st.mode.load(Ordering::SeqCst) {
        1 => Mode::Stall,
        2 => Mode::Drop,
        _ => Mode::Forward,
    }
}

/// Move frames from `from` to `to` until either side ends.
fn pump(mut from: TcpStream, mut to: TcpStream, st: &State) {
    let mut frame = Vec::new();
    loop {
        while mode(st) == Mode::Stall {
            std::thread::sleep(Duration::from_millis(5));
        }
        frame.resize(HEADER, 0);
        if from.read_exact(&mut frame).is_err() {
            break;
        }
        let len = u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]) as usize;
        let padded = len.div_ceil(16) * 16;
        frame.resize(HEADER + padded, 0);
        if from.read_exact(&mut frame[HEADER..]).is_err() {
            break;
        }
        // A frame read while healthy but forwarded after a stall began waits too.
        while mode(st) == Mode::Stall {
            std::thread::sleep(Duration::from_millis(5));
        }
        if mode(st) == Mode::Drop {
            st.dropped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        if to.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}
