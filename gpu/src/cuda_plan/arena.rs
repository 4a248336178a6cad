//! The activation arena: one device buffer per plan, each activation a span of it.
//! Spans are placed first-fit by liveness: a buffer's bytes are free again after the
//! last step that reads it, and only then.

use super::step::ArenaSpan;
use super::ALIGN;

/// One buffer to place: its size and the steps during which it is live (written at
/// `first`, last read at `last`, both inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetime {
    pub(crate) bytes: u64,
    pub(crate) first: usize,
    pub(crate) last: usize,
}

/// Place every buffer so that no two whose lifetimes intersect share a byte. Returns
/// the spans (same order) and the arena size.
pub(crate) fn place(buffers: &[Lifetime]) -> (Vec<ArenaSpan>, u64) {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (buffers[i].first, i));
    let mut spans = vec![
        ArenaSpan {
            offset: 0,
            bytes: 0
        };
        buffers.len()
    ];
    // Placed buffers still live at the current step, sorted by offset.
    let mut live: Vec<usize> = Vec::new();
    let mut size = 0;
    for i in order {
        let b = buffers[i];
        live.retain(|&j| buffers[j].last >= b.first);
        live.sort_by_key(|&j| spans[j].offset);
        let mut offset = 0;
        for &j in &live {
            if offset + b.bytes <= spans[j].offset {
                break;
            }
            offset = offset.max(align_up(spans[j].offset + spans[j].bytes));
        }
        spans[i] = ArenaSpan {
            offset,
            bytes: b.bytes,
        };
        size = size.max(offset + b.bytes);
        live.push(i);
    }
    (spans, align_up(size))
}

/// `x` rounded up to [`ALIGN`].
pub(crate) fn align_up(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}
