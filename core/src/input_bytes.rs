//! An INFER's concatenated inputs, held as the requests' own buffers.
//!
//! The controller keeps each unanswered request's input until its one answer (a request
//! whose window was missed goes out again with the same bytes). A batch's INFER used to
//! copy its members' inputs into one new vector, which the frame encoder then copied
//! again: with inputs of hundreds of KB (a ResNet-50 image is 602,112 bytes) that was an
//! allocation, its page faults and a copy per request, on the controller's one core.
//! [`InputBytes`] instead shares the requests' buffers ([`Bytes`], reference counted) and
//! writes them one after the other straight into the frame. A request's own input is
//! one too: the HTTP front end slices the binary tensors out of the request body it
//! read, so that an image's bytes are copied from the socket into that body and from
//! there into the worker's frame, and nowhere else.
//!
//! On the wire nothing changed: it archives as the `ArchivedVec<u8>` a `Vec<u8>` gives,
//! the bytes of its segments in order, so the worker reads the concatenation in place.

use bytes::Bytes;
use rkyv::rancor::Fallible;
use rkyv::ser::{Allocator, Writer, WriterExt};
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::{Archive, Deserialize, Place, Serialize};

/// Inputs of one batch: segments (one per request that carries bytes) whose
/// concatenation is what the worker receives. Compares, and archives, as that
/// concatenation.
#[derive(Clone, Default)]
pub struct InputBytes {
    segments: Vec<Bytes>,
    len: usize,
}

impl InputBytes {
    /// No inputs (the worker generates them).
    pub const fn new() -> Self {
        Self {
            segments: Vec::new(),
            len: 0,
        }
    }

    /// Room for `segments` segments without reallocating.
    pub fn reserve(&mut self, segments: usize) {
        self.segments.reserve_exact(segments);
    }

    /// Appends one request's bytes: shared, not copied.
    pub fn push(&mut self, segment: Bytes) {
        self.len += segment.len();
        if !segment.is_empty() {
            self.segments.push(segment);
        }
    }

    /// Appends `other`'s segments: shared, not copied.
    pub fn push_all(&mut self, other: &Self) {
        self.segments.extend(other.segments.iter().cloned());
        self.len += other.len;
    }

    /// Drops every segment.
    pub fn clear(&mut self) {
        self.segments.clear();
        self.len = 0;
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Bytes] {
        &self.segments
    }

    /// The concatenation, copied into one vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for s in &self.segments {
            v.extend_from_slice(s);
        }
        v
    }

    /// Whether the concatenation equals `other`.
    fn equals(&self, other: &[u8]) -> bool {
        if other.len() != self.len {
            return false;
        }
        let mut rest = other;
        for s in &self.segments {
            let (head, tail) = rest.split_at(s.len());
            if head != &s[..] {
                return false;
            }
            rest = tail;
        }
        true
    }
}

impl From<Vec<u8>> for InputBytes {
    /// One segment holding `v` (not copied).
    fn from(v: Vec<u8>) -> Self {
        let mut b = Self::new();
        b.push(Bytes::from(v));
        b
    }
}

impl From<Bytes> for InputBytes {
    fn from(b: Bytes) -> Self {
        let mut i = Self::new();
        i.push(b);
        i
    }
}

impl PartialEq for InputBytes {
    fn eq(&self, other: &Self) -> bool {
        match other.segments.as_slice() {
            [] => self.is_empty(),
            [one] => self.equals(one),
            _ => self.equals(&other.to_vec()),
        }
    }
}

impl Eq for InputBytes {}

impl PartialEq<[u8]> for InputBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.equals(other)
    }
}

impl std::fmt::Debug for InputBytes {
    // Lengths only: inputs run to megabytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputBytes")
            .field("len", &self.len)
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl Archive for InputBytes {
    type Archived = ArchivedVec<u8>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: Self::Resolver, out: Place<Self::Archived>) {
        ArchivedVec::resolve_from_len(self.len, resolver, out);
    }
}

impl<S: Fallible + Allocator + Writer + ?Sized> Serialize<S> for InputBytes {
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        // What `[u8]` does: aligned for u8 (a no-op), then the bytes, here segment by
        // segment.
        let pos = serializer.align_for::<u8>()?;
        for s in &self.segments {
            serializer.write(s)?;
        }
        Ok(VecResolver::from_pos(pos))
    }
}

impl<D: Fallible + ?Sized> Deserialize<InputBytes, D> for ArchivedVec<u8> {
    fn deserialize(&self, _: &mut D) -> Result<InputBytes, D::Error> {
        Ok(Bytes::copy_from_slice(self.as_slice()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkyv::rancor::Error;

    #[test]
    fn segments_archive_as_their_concatenation_and_as_a_vec_would() {
        let mut inputs = InputBytes::new();
        inputs.push(Bytes::from_static(b"abc"));
        inputs.push(Bytes::new());
        inputs.push(Bytes::from(vec![1u8, 2, 3, 4]));
        assert_eq!(inputs.len(), 7);
        assert_eq!(inputs.segments().len(), 2);
        let flat: Vec<u8> = b"abc\x01\x02\x03\x04".to_vec();
        let ours = rkyv::to_bytes::<Error>(&inputs).unwrap();
        let theirs = rkyv::to_bytes::<Error>(&flat).unwrap();
        assert_eq!(ours.as_slice(), theirs.as_slice());
        let archived = rkyv::access::<ArchivedVec<u8>, Error>(&ours).unwrap();
        assert_eq!(archived.as_slice(), flat.as_slice());
        let back: InputBytes = rkyv::deserialize::<InputBytes, Error>(archived).unwrap();
        assert_eq!(back, inputs);
        assert_eq!(back.to_vec(), flat);
    }

    #[test]
    fn equality_is_by_content_whatever_the_segments() {
        let mut two = InputBytes::new();
        two.push(Bytes::from_static(b"ab"));
        two.push(Bytes::from_static(b"cd"));
        let one = InputBytes::from(b"abcd".to_vec());
        assert_eq!(two, one);
        assert_eq!(one, two);
        assert_ne!(one, InputBytes::from(b"abce".to_vec()));
        assert_ne!(one, InputBytes::from(b"abc".to_vec()));
        assert_eq!(InputBytes::new(), InputBytes::from(Vec::new()));
        assert!(two == *b"abcd".as_slice());
    }

    #[test]
    fn a_pushed_segment_is_shared_not_copied() {
        let buf = Bytes::from(vec![9u8; 1 << 20]);
        let mut inputs = InputBytes::new();
        inputs.push(buf.clone());
        assert_eq!(inputs.segments()[0].as_ptr(), buf.as_ptr());
    }
}
