//! The frame format, as a sans-IO codec: [`FrameEncoder`] turns a message into the exact
//! bytes of one frame, [`RecvBuffer`] finds complete frames in received bytes. Neither
//! touches a socket, so both are tested (and fuzzed) without one.
//!
//! A frame is a fixed 32-byte little-endian header, then the rkyv archive of the
//! message, then zero padding up to a multiple of 16 bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `CLWK` (`0x4b574c43` read as a little-endian u32) |
//! | 4 | 2 | protocol version ([`PROTOCOL_VERSION`]) |
//! | 6 | 2 | message kind ([`MessageKind`]) |
//! | 8 | 4 | payload length: the exact archive length, without padding |
//! | 12 | 4 | CRC-32 of header bytes 0..12 and 16..32, then the payload |
//! | 16 | 8 | sender's send time, its own monotonic clock (ns) |
//! | 24 | 8 | sender's current minimum receive delta (i64 ns; `i64::MAX` = none yet) |
//!
//! Because the header and every padded frame are multiples of 16 bytes, a payload that
//! is received into a 16-aligned buffer starts 16-aligned, so the archive is validated
//! and read in place, never copied. The checksum makes every corrupted bit a clear
//! error instead of a silently different message.

use crate::error::NetError;
use clockwork_core::wire::{MessageKind, WireMessage, PROTOCOL_VERSION};
use rkyv::api::high::{HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor::BoxedError;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Serialize};

/// `CLWK` as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"CLWK");
/// Header length in bytes.
pub const HEADER_LEN: usize = 32;
/// Alignment of frames and payloads.
pub const FRAME_ALIGN: usize = 16;
/// Default limit on a frame's payload: 16 MiB (a batch of 16 ResNet50 inputs is 9.6 MB).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// The "no estimate yet" value of the delta field.
pub const NO_DELTA: i64 = i64::MAX;

/// The buffer type frames are built and received in.
pub type FrameBuf = AlignedVec<FRAME_ALIGN>;

/// A message that can be sent: a wire type that rkyv can serialize into a [`FrameBuf`].
pub trait Encode:
    WireMessage + for<'a> Serialize<HighSerializer<FrameBuf, ArenaHandle<'a>, BoxedError>>
{
}
impl<T> Encode for T where
    T: WireMessage + for<'a> Serialize<HighSerializer<FrameBuf, ArenaHandle<'a>, BoxedError>>
{
}

/// A message that can be received: a wire type whose archive can be validated.
pub trait Decode:
    WireMessage + Archive<Archived: for<'a> CheckBytes<HighValidator<'a, BoxedError>> + 'static>
{
}
impl<T> Decode for T where
    T: WireMessage + Archive<Archived: for<'a> CheckBytes<HighValidator<'a, BoxedError>> + 'static>
{
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version.
    pub version: u16,
    /// Message kind (raw; checked against [`MessageKind`] on parse).
    pub kind: u16,
    /// Exact archive length.
    pub payload_len: u32,
    /// Checksum.
    pub crc: u32,
    /// Sender's send time (its clock).
    pub send_ts: u64,
    /// Sender's minimum receive delta.
    pub delta_min: i64,
}

impl Header {
    /// The payload length a frame built by [`FrameEncoder::encode`] declares.
    pub fn parse_len(frame: &[u8]) -> usize {
        match frame.get(8..12) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
            _ => 0,
        }
    }

    /// Bytes the whole frame takes, padding included.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + padded(self.payload_len as usize)
    }

    /// Parse and check a header: magic, version, kind, reserved nothing, length limit.
    /// The checksum is checked later, once the payload is there.
    pub fn parse(bytes: &[u8; HEADER_LEN], max_payload: usize) -> Result<Self, NetError> {
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let magic = u32_at(0);
        if magic != MAGIC {
            return Err(NetError::BadMagic(magic));
        }
        let version = u16_at(4);
        if version != PROTOCOL_VERSION {
            return Err(NetError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: version,
            });
        }
        let kind = u16_at(6);
        if MessageKind::from_u16(kind).is_none() {
            return Err(NetError::UnknownKind(kind));
        }
        let payload_len = u32_at(8);
        if payload_len as usize > max_payload {
            return Err(NetError::Oversized {
                len: u64::from(payload_len),
                max: max_payload,
            });
        }
        Ok(Self {
            version,
            kind,
            payload_len,
            crc: u32_at(12),
            send_ts: u64_at(16),
            delta_min: u64_at(24) as i64,
        })
    }
}

/// `len` rounded up to [`FRAME_ALIGN`].
pub const fn padded(len: usize) -> usize {
    len.div_ceil(FRAME_ALIGN) * FRAME_ALIGN
}

fn checksum(frame: &[u8], payload_len: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&frame[0..12]);
    h.update(&frame[16..HEADER_LEN]);
    h.update(&frame[HEADER_LEN..HEADER_LEN + payload_len]);
    h.finalize()
}

/// Builds frames in one reused, aligned buffer: the archive is serialized straight
/// after the header, so the finished frame is one contiguous slice for one write.
#[derive(Debug, Default)]
pub struct FrameEncoder {
    buf: FrameBuf,
}

impl FrameEncoder {
    /// A new encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encode `msg` as one frame stamped with the sender's `send_ts` and `delta_min`;
    /// returns the frame's bytes, valid until the next call.
    pub fn encode<T: Encode>(
        &mut self,
        msg: &T,
        send_ts: u64,
        delta_min: i64,
    ) -> Result<&[u8], NetError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.extend_from_slice(&[0u8; HEADER_LEN]);
        let mut buf = rkyv::api::high::to_bytes_in::<_, BoxedError>(msg, buf)
            .map_err(|e| NetError::Serialize(e.to_string()))?;
        let payload_len = buf.len() - HEADER_LEN;
        let Ok(len32) = u32::try_from(payload_len) else {
            self.buf = buf;
            return Err(NetError::Oversized {
                len: payload_len as u64,
                max: u32::MAX as usize,
            });
        };
        buf.resize(HEADER_LEN + padded(payload_len), 0);
        let h = buf.as_mut_slice();
        h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        h[6..8].copy_from_slice(&(T::KIND as u16).to_le_bytes());
        h[8..12].copy_from_slice(&len32.to_le_bytes());
        h[16..24].copy_from_slice(&send_ts.to_le_bytes());
        h[24..32].copy_from_slice(&delta_min.to_le_bytes());
        let crc = checksum(h, payload_len);
        h[12..16].copy_from_slice(&crc.to_le_bytes());
        self.buf = buf;
        Ok(self.buf.as_slice())
    }
}

const EMPTY_FRAME: Frame<'static> = Frame {
    header: Header {
        version: PROTOCOL_VERSION,
        kind: 0,
        payload_len: 0,
        crc: 0,
        send_ts: 0,
        delta_min: NO_DELTA,
    },
    payload: &[],
};

/// A complete, checksummed frame inside a [`RecvBuffer`].
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Its header.
    pub header: Header,
    /// The exact archive bytes, 16-aligned.
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The message kind (always `Some` for frames that came through
    /// [`Header::parse`]).
    pub fn kind(&self) -> Option<MessageKind> {
        MessageKind::from_u16(self.header.kind)
    }

    /// Validate the payload as a `T` and return the archive in place: the one
    /// validation at the trust boundary.
    pub fn access<T: Decode>(&self) -> Result<&'a T::Archived, NetError> {
        if self.header.kind != T::KIND as u16 {
            return Err(NetError::UnexpectedKind {
                expected: T::KIND as u16,
                got: self.header.kind,
            });
        }
        rkyv::access::<T::Archived, BoxedError>(self.payload).map_err(|e| {
            NetError::InvalidPayload {
                kind: self.header.kind,
                reason: e.to_string(),
            }
        })
    }
}

/// A 16-aligned receive buffer that yields complete frames in place.
///
/// Use: write received bytes into [`RecvBuffer::spare`], [`RecvBuffer::commit`] them,
/// then call [`RecvBuffer::next_frame`] until it returns `None`. A frame borrowed from
/// the buffer is released by the next call to `next_frame` or `spare`.
#[derive(Debug)]
pub struct RecvBuffer {
    buf: FrameBuf,
    start: usize,
    end: usize,
    release: usize,
    ready: Option<Header>,
    max_payload: usize,
    /// How much to read at once between frames: starts small, doubles while reads fill
    /// it (a busy link), up to [`MAX_READ`].
    read_size: usize,
    /// The most memory the buffer keeps once it is empty ([`RecvBuffer::set_keep`]).
    keep: usize,
}

/// The first read between frames: enough for a handshake, small enough that an idle
/// connection costs little.
pub const MIN_READ: usize = 512;
/// The largest read between frames, and the most a buffer keeps once it is empty: a
/// buffer grown past this for one big frame is freed when that frame is consumed.
pub const MAX_READ: usize = 64 * 1024;

impl RecvBuffer {
    /// A buffer that refuses payloads over `max_payload` bytes. It allocates nothing
    /// until the first read.
    pub fn new(max_payload: usize) -> Self {
        Self {
            buf: FrameBuf::new(),
            start: 0,
            end: 0,
            release: 0,
            ready: None,
            max_payload,
            read_size: MIN_READ,
            keep: MAX_READ,
        }
    }

    /// Keep up to `bytes` of memory once the buffer is empty (default [`MAX_READ`]).
    /// A link that routinely carries large frames (a worker link: INFER inputs one
    /// way, outputs the other) keeps the buffer one of them grew instead of
    /// allocating, zeroing and faulting in a new one for each; a client link, which
    /// may sit idle for hours after one large request, gives it back.
    pub fn set_keep(&mut self, bytes: usize) {
        self.keep = bytes.max(MAX_READ);
    }

    /// Change the payload limit (e.g. raise it once the peer is authenticated). Applies
    /// to frames whose header has not been checked yet.
    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.max_payload = max_payload;
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start - self.release
    }

    /// Bytes of memory the buffer holds.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn apply_release(&mut self) {
        self.start += self.release;
        self.release = 0;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > self.keep {
                // One big frame grew it: give the memory back rather than keep it for
                // the life of the connection.
                self.buf = FrameBuf::new();
            }
        }
    }

    /// Room to receive into: at least enough for the frame being assembled (if its
    /// header is in), the current read size otherwise. Moves unconsumed bytes to the
    /// front when that makes room; frame starts stay 16-aligned because frames are
    /// padded.
    pub fn spare(&mut self) -> &mut [u8] {
        self.apply_release();
        let pending = self.end - self.start;
        let need = match self.peek_header() {
            Some(Ok(h)) => h.frame_len().saturating_sub(pending).max(1),
            _ => self.read_size,
        };
        if self.buf.len() - self.end < need {
            if self.start > 0 {
                self.buf.as_mut_slice().copy_within(self.start..self.end, 0);
                self.end = pending;
                self.start = 0;
            }
            if self.buf.len() - self.end < need {
                let want = (self.end + need).next_power_of_two();
                self.buf.resize(want, 0);
            }
        }
        let end = self.end;
        &mut self.buf.as_mut_slice()[end..]
    }

    /// Mark `n` bytes of [`RecvBuffer::spare`] as received.
    pub fn commit(&mut self, n: usize) {
        if self.end + n >= self.buf.len() && self.read_size < MAX_READ {
            // The read filled all the room there was: more is probably coming.
            self.read_size *= 2;
        }
        self.end = (self.end + n).min(self.buf.len());
    }

    fn peek_header(&self) -> Option<Result<Header, NetError>> {
        let avail = &self.buf.as_slice()[self.start..self.end];
        let bytes: &[u8; HEADER_LEN] = avail.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header::parse(bytes, self.max_payload))
    }

    /// Is a complete, checksummed frame buffered? An error means the stream is
    /// unusable (the caller closes the connection). After `Ok(true)`,
    /// [`RecvBuffer::take`] returns that frame.
    pub fn ready(&mut self) -> Result<bool, NetError> {
        self.apply_release();
        if self.ready.is_some() {
            return Ok(true);
        }
        let header = match self.peek_header() {
            None => return Ok(false),
            Some(h) => h?,
        };
        let frame_len = header.frame_len();
        if self.end - self.start < frame_len {
            return Ok(false);
        }
        let frame = &self.buf.as_slice()[self.start..self.start + frame_len];
        let computed = checksum(frame, header.payload_len as usize);
        if computed != header.crc {
            return Err(NetError::BadChecksum {
                got: header.crc,
                computed,
            });
        }
        self.ready = Some(header);
        Ok(true)
    }

    /// The frame that [`RecvBuffer::ready`] found, if any. It stays borrowed from the
    /// buffer until the next call that takes `&mut self`.
    pub fn take(&mut self) -> Option<Frame<'_>> {
        let header = self.ready.take()?;
        let frame_len = header.frame_len();
        let start = self.start;
        self.release = frame_len;
        let payload = &self.buf.as_slice()
            [start + HEADER_LEN..start + HEADER_LEN + header.payload_len as usize];
        Some(Frame { header, payload })
    }

    /// The frame that [`RecvBuffer::ready`] just reported. Calling it when `ready` did
    /// not return `Ok(true)` is a logic error; it then yields an empty frame of kind 0,
    /// which fails every typed access, rather than panicking.
    pub fn take_ready(&mut self) -> Frame<'_> {
        self.take().unwrap_or(EMPTY_FRAME)
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the error that
    /// makes this stream unusable.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, NetError> {
        if self.ready()? {
            Ok(self.take())
        } else {
            Ok(None)
        }
    }

    /// Describe what is left when the stream ends: `Closed` between frames,
    /// `Truncated` inside one.
    pub fn eof_error(&mut self) -> NetError {
        self.apply_release();
        let have = self.end - self.start;
        if have == 0 {
            return NetError::Closed;
        }
        let need = match self.peek_header() {
            Some(Ok(h)) => h.frame_len(),
            _ => HEADER_LEN,
        };
        NetError::Truncated { have, need }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::wire::{Hello, PeerRole};

    fn hello() -> Hello {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            role: PeerRole::Client,
            token: "secret".into(),
            name: "test".into(),
        }
    }

    #[test]
    fn encode_then_decode_in_place() {
        let mut enc = FrameEncoder::new();
        let bytes = enc.encode(&hello(), 42, -7).unwrap().to_vec();
        assert_eq!(bytes.len() % FRAME_ALIGN, 0);
        let mut rb = RecvBuffer::new(DEFAULT_MAX_FRAME);
        rb.spare()[..bytes.len()].copy_from_slice(&bytes);
        rb.commit(bytes.len());
        let frame = rb.next_frame().unwrap().unwrap();
        assert_eq!(frame.header.send_ts, 42);
        assert_eq!(frame.header.delta_min, -7);
        assert_eq!(frame.payload.as_ptr() as usize % FRAME_ALIGN, 0);
        let h = frame.access::<Hello>().unwrap();
        assert_eq!(h.token, "secret");
        assert!(rb.next_frame().unwrap().is_none());
    }

    #[test]
    fn frames_split_at_every_byte_boundary() {
        let mut enc = FrameEncoder::new();
        let mut stream = enc.encode(&hello(), 1, 0).unwrap().to_vec();
        stream.extend_from_slice(enc.encode(&hello(), 2, 0).unwrap());
        for cut in 0..stream.len() {
            let mut rb = RecvBuffer::new(DEFAULT_MAX_FRAME);
            let mut seen = Vec::new();
            for chunk in [&stream[..cut], &stream[cut..]] {
                rb.spare()[..chunk.len()].copy_from_slice(chunk);
                rb.commit(chunk.len());
                while let Some(f) = rb.next_frame().unwrap() {
                    seen.push(f.header.send_ts);
                }
            }
            assert_eq!(seen, vec![1, 2], "cut at {cut}");
        }
    }

    #[test]
    fn corrupt_headers_are_named() {
        let mut enc = FrameEncoder::new();
        let good = enc.encode(&hello(), 1, 0).unwrap().to_vec();
        let parse = |b: &[u8]| Header::parse(b[..HEADER_LEN].try_into().unwrap(), 1024);
        let mut b = good.clone();
        b[0] ^= 1;
        assert!(matches!(parse(&b), Err(NetError::BadMagic(_))));
        let mut b = good.clone();
        b[4] = 9;
        assert!(matches!(
            parse(&b),
            Err(NetError::VersionMismatch { theirs: 9, .. })
        ));
        let mut b = good.clone();
        b[6] = 77;
        assert!(matches!(parse(&b), Err(NetError::UnknownKind(77))));
        let mut b = good;
        b[8..12].copy_from_slice(&5000u32.to_le_bytes());
        assert!(matches!(
            parse(&b),
            Err(NetError::Oversized {
                len: 5000,
                max: 1024
            })
        ));
    }

    #[test]
    fn a_flipped_payload_bit_fails_the_checksum() {
        let mut enc = FrameEncoder::new();
        let good = enc.encode(&hello(), 1, 0).unwrap().to_vec();
        for bit in (HEADER_LEN * 8)..(good.len() * 8) {
            let mut b = good.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let mut rb = RecvBuffer::new(DEFAULT_MAX_FRAME);
            rb.spare()[..b.len()].copy_from_slice(&b);
            rb.commit(b.len());
            let payload_len = u32::from_le_bytes(good[8..12].try_into().unwrap()) as usize;
            let r = rb.next_frame();
            if bit / 8 < HEADER_LEN + payload_len {
                assert!(matches!(r, Err(NetError::BadChecksum { .. })), "bit {bit}");
            }
        }
    }

    #[test]
    fn eof_inside_a_frame_is_truncation() {
        let mut enc = FrameEncoder::new();
        let good = enc.encode(&hello(), 1, 0).unwrap().to_vec();
        let mut rb = RecvBuffer::new(DEFAULT_MAX_FRAME);
        rb.spare()[..40].copy_from_slice(&good[..40]);
        rb.commit(40);
        assert!(rb.next_frame().unwrap().is_none());
        assert!(matches!(
            rb.eof_error(),
            NetError::Truncated { have: 40, .. }
        ));
        let mut empty = RecvBuffer::new(DEFAULT_MAX_FRAME);
        assert!(matches!(empty.eof_error(), NetError::Closed));
    }

    #[test]
    fn wrong_type_is_refused() {
        let mut enc = FrameEncoder::new();
        let good = enc.encode(&hello(), 1, 0).unwrap().to_vec();
        let mut rb = RecvBuffer::new(DEFAULT_MAX_FRAME);
        rb.spare()[..good.len()].copy_from_slice(&good);
        rb.commit(good.len());
        let f = rb.next_frame().unwrap().unwrap();
        assert!(matches!(
            f.access::<clockwork_core::wire::ToWorker>(),
            Err(NetError::UnexpectedKind { .. })
        ));
    }

    /// Receives `bytes` into `rb` as a socket would, a spare area at a time.
    fn receive_all(rb: &mut RecvBuffer, bytes: &[u8]) {
        let mut off = 0;
        while off < bytes.len() {
            let spare = rb.spare();
            let n = spare.len().min(bytes.len() - off);
            spare[..n].copy_from_slice(&bytes[off..off + n]);
            rb.commit(n);
            off += n;
        }
    }

    #[test]
    fn an_idle_buffer_is_small_and_a_big_frame_is_freed_after_use() {
        let mut rb = RecvBuffer::new(DEFAULT_MAX_FRAME);
        assert_eq!(rb.capacity(), 0, "nothing allocated before the first read");
        assert!(rb.spare().len() <= 2 * MIN_READ);
        let big = vec![0u8; 1 << 20];
        let mut enc = FrameEncoder::new();
        let msg = Hello {
            protocol_version: PROTOCOL_VERSION,
            role: PeerRole::Client,
            token: String::from_utf8(big).unwrap(),
            name: "big".into(),
        };
        let bytes = enc.encode(&msg, 1, 0).unwrap().to_vec();
        receive_all(&mut rb, &bytes);
        assert!(rb.capacity() >= bytes.len());
        assert!(rb.next_frame().unwrap().is_some());
        // The next call that looks at the buffer releases the frame and the memory.
        assert!(rb.next_frame().unwrap().is_none());
        assert!(rb.capacity() <= MAX_READ, "kept {} bytes", rb.capacity());
        // A buffer told to keep up to the frame limit keeps it, and the next big frame
        // goes into the same memory.
        let mut rb = RecvBuffer::new(DEFAULT_MAX_FRAME);
        rb.set_keep(DEFAULT_MAX_FRAME);
        let mut at = None;
        for _ in 0..2 {
            receive_all(&mut rb, &bytes);
            let frame = rb.next_frame().unwrap().expect("a whole frame");
            let here = frame.payload.as_ptr();
            assert_eq!(
                *at.get_or_insert(here),
                here,
                "a new buffer for the second frame"
            );
            assert!(rb.next_frame().unwrap().is_none());
            assert!(rb.capacity() >= bytes.len(), "kept {} bytes", rb.capacity());
        }
    }

    #[test]
    fn the_payload_limit_can_be_raised_after_the_handshake() {
        let mut enc = FrameEncoder::new();
        let bytes = enc.encode(&hello(), 1, 0).unwrap().to_vec();
        let mut rb = RecvBuffer::new(16);
        rb.spare()[..bytes.len()].copy_from_slice(&bytes);
        rb.commit(bytes.len());
        assert!(matches!(rb.next_frame(), Err(NetError::Oversized { .. })));
        let mut rb = RecvBuffer::new(16);
        rb.set_max_payload(DEFAULT_MAX_FRAME);
        rb.spare()[..bytes.len()].copy_from_slice(&bytes);
        rb.commit(bytes.len());
        assert!(rb.next_frame().unwrap().is_some());
    }

    #[test]
    fn large_frames_grow_the_buffer() {
        let big = clockwork_core::wire::ToWorker::Actions(vec![clockwork_core::Action {
            id: clockwork_core::ActionId(1),
            window: clockwork_core::Window::ANY,
            kind: clockwork_core::ActionKind::Infer {
                model: clockwork_core::ModelId(1),
                gpu: clockwork_core::GpuId(0),
                batch_size: 1,
                expected_duration: clockwork_core::Nanos(1),
                input_sizes: vec![300_000],
                inputs: vec![7u8; 300_000].into(),
            },
        }]);
        let mut enc = FrameEncoder::new();
        let bytes = enc.encode(&big, 1, 0).unwrap().to_vec();
        let mut rb = RecvBuffer::new(DEFAULT_MAX_FRAME);
        let mut off = 0;
        let mut got = false;
        while off < bytes.len() {
            let spare = rb.spare();
            let n = spare.len().min(bytes.len() - off).min(10_000);
            spare[..n].copy_from_slice(&bytes[off..off + n]);
            rb.commit(n);
            off += n;
            if let Some(f) = rb.next_frame().unwrap() {
                let a = f.access::<clockwork_core::wire::ToWorker>().unwrap();
                let clockwork_core::wire::ArchivedToWorker::Actions(v) = a else {
                    panic!("not actions");
                };
                assert_eq!(v.len(), 1);
                got = true;
            }
        }
        assert!(got);
    }
}
