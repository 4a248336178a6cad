//! The byte buffers INFERs carry, kept for reuse: the input copied out of each INFER's
//! frame and the output buffer its device fills. Devices hand both back in every
//! completion, and the result writers hand back each output once it is on the wire,
//! so in steady state an INFER allocates nothing: its buffers are those of INFERs that
//! ended before it. The pool keeps at most [`MAX_KEPT`] buffers and [`MAX_KEPT_BYTES`]
//! bytes; past that a returned buffer is freed (or replaces a smaller one), so one
//! burst of large batches does not pin its memory for good.
//!
//! One pool per worker thread, shared by the core and the result writers of that
//! thread (`Rc`, no lock). A buffer handed out holds no previous content that matters:
//! inputs are overwritten whole, outputs are zeroed before the device fills them.

use std::cell::RefCell;

/// Most buffers kept.
pub(crate) const MAX_KEPT: usize = 64;
/// Most bytes (capacity) kept over all buffers.
pub(crate) const MAX_KEPT_BYTES: usize = 256 << 20;

/// What [`BufferPool::zeroed`] copies from.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Whether a kept buffer of `capacity` bytes is handed out for `len`: it must hold
/// them, and not be more than twice as large (plus a page), so that a large buffer is
/// not tied up holding a few bytes while a large INFER allocates its own.
fn fits(capacity: usize, len: usize) -> bool {
    capacity >= len && capacity <= len.saturating_mul(2).saturating_add(4096)
}

/// Free buffers, reused by capacity.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    free: RefCell<Free>,
}

#[derive(Debug, Default)]
struct Free {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
    /// Buffers handed out that had to be allocated (tests and statistics).
    allocated: u64,
}

impl BufferPool {
    /// A copy of `bytes` in a kept buffer (a new one if none is large enough). No
    /// allocation at all for no bytes.
    pub(crate) fn copy_of(&self, bytes: &[u8]) -> Vec<u8> {
        let mut v = self.take(bytes.len());
        v.extend_from_slice(bytes);
        v
    }

    /// `len` zero bytes in a kept buffer (a new one if none fits).
    pub(crate) fn zeroed(&self, len: usize) -> Vec<u8> {
        let mut v = self.take(len);
        // In copies of a zero block: `memcpy` whatever the build's optimisation, where
        // `resize` is a byte-by-byte loop in a debug build (80 ms for 8 MiB, which made
        // INFERs miss their windows in tests).
        while v.len() < len {
            let n = (len - v.len()).min(ZEROS.len());
            v.extend_from_slice(&ZEROS[..n]);
        }
        v
    }

    /// An empty buffer with room for `len` bytes: the smallest kept one that has it,
    /// unless even that one is more than twice as large ([`fits`]).
    fn take(&self, len: usize) -> Vec<u8> {
        if len == 0 {
            return Vec::new();
        }
        let mut free = self.free.borrow_mut();
        let best = free
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| fits(b.capacity(), len))
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let v = free.buffers.swap_remove(i);
                free.bytes -= v.capacity();
                v
            }
            None => {
                free.allocated += 1;
                Vec::with_capacity(len)
            }
        }
    }

    /// A buffer is no longer needed: keep it for reuse if there is room, else free it
    /// (or free the smallest kept one instead, when this one is larger).
    pub(crate) fn give(&self, mut v: Vec<u8>) {
        let cap = v.capacity();
        if cap == 0 || cap > MAX_KEPT_BYTES {
            return;
        }
        v.clear();
        let mut free = self.free.borrow_mut();
        while free.buffers.len() >= MAX_KEPT || free.bytes + cap > MAX_KEPT_BYTES {
            let Some((i, smallest)) = free
                .buffers
                .iter()
                .enumerate()
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, b)| (i, b.capacity()))
            else {
                return;
            };
            if smallest >= cap {
                return;
            }
            free.buffers.swap_remove(i);
            free.bytes -= smallest;
        }
        free.bytes += cap;
        free.buffers.push(v);
    }

    /// Buffers and bytes kept now.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> (usize, usize) {
        let free = self.free.borrow();
        (free.buffers.len(), free.bytes)
    }

    /// Buffers handed out that had to be allocated, since the start.
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> u64 {
        self.free.borrow().allocated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_handed_out_again_for_anything_it_can_hold() {
        let pool = BufferPool::default();
        let a = pool.copy_of(&[7; 1000]);
        let at = a.as_ptr();
        pool.give(a);
        assert_eq!(pool.kept(), (1, 1000));
        // Smaller: the same memory, holding exactly the new bytes.
        let b = pool.copy_of(&[1, 2, 3]);
        assert_eq!((b.as_ptr(), b.as_slice()), (at, &[1u8, 2, 3][..]));
        pool.give(b);
        // Zeroed: no byte of what it held before.
        let c = pool.zeroed(500);
        assert_eq!(c.as_ptr(), at);
        assert!(c.iter().all(|&x| x == 0) && c.len() == 500);
        pool.give(c);
        // Larger than anything kept: a new one.
        let d = pool.zeroed(2000);
        assert_ne!(d.as_ptr(), at);
        assert_eq!(pool.allocated(), 2);
        // Nothing: no buffer taken or allocated.
        assert_eq!(pool.copy_of(&[]).capacity(), 0);
        assert_eq!((pool.allocated(), pool.kept().0), (2, 1));
    }

    #[test]
    fn a_buffer_much_larger_than_needed_is_left_for_a_larger_request() {
        let pool = BufferPool::default();
        let big = pool.zeroed(1 << 20);
        let at = big.as_ptr();
        pool.give(big);
        let small = pool.copy_of(&[1; 16]);
        assert_ne!(small.as_ptr(), at);
        assert_eq!(pool.kept().0, 1);
        let again = pool.zeroed(600 << 10);
        assert_eq!(again.as_ptr(), at);
        assert!(again.len() == 600 << 10 && again.iter().all(|&b| b == 0));
    }

    #[test]
    fn the_smallest_fitting_buffer_is_taken() {
        let pool = BufferPool::default();
        let (big, small) = (pool.zeroed(4096), pool.zeroed(64));
        let small_at = small.as_ptr();
        pool.give(big);
        pool.give(small);
        let again = pool.zeroed(10);
        assert_eq!(again.as_ptr(), small_at);
    }

    #[test]
    fn the_pool_keeps_at_most_its_bounds_and_prefers_larger_buffers() {
        let pool = BufferPool::default();
        let many: Vec<Vec<u8>> = (0..MAX_KEPT + 10).map(|_| pool.zeroed(16)).collect();
        for v in many {
            pool.give(v);
        }
        assert_eq!(pool.kept(), (MAX_KEPT, MAX_KEPT * 16));
        // A larger one replaces a small one; a smaller one is freed.
        pool.give(Vec::with_capacity(1 << 20));
        assert_eq!(pool.kept(), (MAX_KEPT, (MAX_KEPT - 1) * 16 + (1 << 20)));
        pool.give(Vec::with_capacity(8));
        assert_eq!(pool.kept(), (MAX_KEPT, (MAX_KEPT - 1) * 16 + (1 << 20)));
        // Bytes are bounded too: one buffer above the bound is never kept, and large
        // ones push out the rest to stay within it.
        pool.give(Vec::with_capacity(MAX_KEPT_BYTES + 1));
        for _ in 0..3 {
            pool.give(Vec::with_capacity(MAX_KEPT_BYTES / 2));
        }
        let (_, bytes) = pool.kept();
        assert!(bytes <= MAX_KEPT_BYTES, "{bytes}");
        assert_eq!(bytes, MAX_KEPT_BYTES);
    }
}
