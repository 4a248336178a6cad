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

#[cfg(test)]
mod tests {
    use super::*;

    fn life(bytes: u64, first: usize, last: usize) -> Lifetime {
        Lifetime { bytes, first, last }
    }

    #[test]
    fn disjoint_lifetimes_share_bytes_and_overlapping_ones_do_not() {
        // a: steps 0-1, b: 1-2, c: 2-3 (reuses a's bytes), d: 3-3 (reuses b's).
        let buffers = [
            life(1000, 0, 1),
            life(300, 1, 2),
            life(900, 2, 3),
            life(200, 3, 3),
        ];
        let (spans, size) = place(&buffers);
        assert_eq!(spans[0].offset, 0);
        assert_eq!(spans[1].offset, align_up(1000));
        assert_eq!(spans[2].offset, 0, "a is dead after step 1");
        assert_eq!(spans[3].offset, align_up(1000), "b is dead after step 2");
        assert_eq!(size, align_up(1000) + align_up(300));
        for (i, a) in buffers.iter().enumerate() {
            for (j, b) in buffers.iter().enumerate().skip(i + 1) {
                if a.first <= b.last && b.first <= a.last {
                    assert!(
                        !spans[i].overlaps(&spans[j]),
                        "{i} and {j} are live together"
                    );
                }
            }
        }
    }

    #[test]
    fn a_gap_too_small_is_skipped() {
        // a (0-3) and c (0-3) stay; b (0-0) leaves a 256-byte hole; d (1-3) needs 512.
        let buffers = [
            life(256, 0, 3),
            life(256, 0, 0),
            life(256, 0, 3),
            life(512, 1, 3),
        ];
        let (spans, _) = place(&buffers);
        assert_eq!(
            spans[3].offset,
            3 * ALIGN,
            "placed after c, not in b's hole"
        );
    }
}
