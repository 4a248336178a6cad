//! A plan's weights in the model's pages: the host image a LOAD copies page by page
//! (each weight in its device layout and the plan's precision, at its slot), and the
//! device address of each weight once the page cache has given the model its pages.
//! The libraries read a weight as one run of bytes, so a weight that runs over into
//! further pages needs those pages adjacent in the cache; otherwise it is refused for
//! this LOAD. It does not copy anything (that is the backend's LOAD).

use super::error::ExecError;
use crate::cuda_plan::{reference, PlacementError, Plan, WeightPlacement, WeightSlot, ALIGN};
use clockwork_models::Precision;

/// Place weights of `sizes` (in the plan's order) in pages of `page_size` bytes, largest
/// first, each in the first page with room (first-fit decreasing), 256-byte aligned; a
/// weight larger than a page takes a run of fresh pages at offset 0 (what is left of its
/// last page takes smaller ones). Packs tighter than the plan's in-order placement
/// (`Plan::place_weights`), so that a model's weights in the device layout fit the pages
/// its profile's byte count grants (ResNet-18 in fp32 needs 3 pages of 16 MiB this way,
/// 4 in order).
pub fn pack_weights(sizes: &[u64], page_size: u64) -> Result<WeightPlacement, PlacementError> {
    if page_size == 0 || !page_size.is_multiple_of(ALIGN) {
        return Err(PlacementError::BadPageSize(page_size));
    }
    let align = |x: u64| x.div_ceil(ALIGN) * ALIGN;
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    // Stable: equal sizes keep the plan's order.
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    // Bytes used in each page so far (an aligned end).
    let mut used: Vec<u64> = Vec::new();
    let mut slots = vec![
        WeightSlot {
            page: 0,
            offset: 0,
            bytes: 0
        };
        sizes.len()
    ];
    let page_index = |p: usize| u32::try_from(p).map_err(|_| PlacementError::TooManyPages);
    for i in order {
        let bytes = sizes[i];
        if bytes > page_size {
            let n = bytes.div_ceil(page_size);
            let first = used.len();
            for k in 1..=n {
                used.push(if k == n {
                    align(bytes - (n - 1) * page_size)
                } else {
                    page_size
                });
            }
            slots[i] = WeightSlot {
                page: page_index(first)?,
                offset: 0,
                bytes,
            };
            continue;
        }
        let page = match used.iter().position(|&u| u + bytes <= page_size) {
            Some(p) => p,
            None => {
                used.push(0);
                used.len() - 1
            }
        };
        slots[i] = WeightSlot {
            page: page_index(page)?,
            offset: used[page],
            bytes,
        };
        used[page] = align(used[page] + bytes);
    }
    Ok(WeightPlacement {
        page_size,
        slots,
        pages: page_index(used.len())?,
    })
}

/// `value` as IEEE 754 half-precision bits, rounded to nearest even; overflow becomes
/// infinity, NaN stays NaN (the `half` crate's conversion).
pub fn f16_bits(value: f32) -> u16 {
    half::f16::from_f32(value).to_bits()
}

/// Half-precision bits as `f32` (exact).
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// Write `values` in `precision` (little-endian) into `out`, which holds exactly their bytes.
pub fn encode(values: &[f32], precision: Precision, out: &mut [u8]) {
    match precision {
        Precision::Fp32 => {
            for (v, o) in values.iter().zip(out.chunks_exact_mut(4)) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        Precision::Fp16 => {
            for (v, o) in values.iter().zip(out.chunks_exact_mut(2)) {
                o.copy_from_slice(&f16_bits(*v).to_le_bytes());
            }
        }
    }
}

/// Read `bytes` in `precision` into `out` as `f32`.
pub fn decode(bytes: &[u8], precision: Precision, out: &mut [f32]) {
    match precision {
        Precision::Fp32 => {
            for (b, o) in bytes.chunks_exact(4).zip(out.iter_mut()) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Precision::Fp16 => {
            for (b, o) in bytes.chunks_exact(2).zip(out.iter_mut()) {
                *o = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
    }
}

/// The model's pages as the host sees them before a LOAD: `placement.pages` pages, each
/// weight at its slot's linear position, in its device layout and the plan's precision;
/// the bytes between weights are zero.
pub fn host_image(plan: &Plan, placement: &WeightPlacement) -> Result<Vec<u8>, ExecError> {
    let total = u64::from(placement.pages) * placement.page_size;
    let len = usize::try_from(total).map_err(|_| ExecError::TooLarge {
        what: "weight pages (bytes)",
        value: total,
    })?;
    let mut image = vec![0u8; len];
    let eb = crate::cuda_plan::element_bytes(plan.precision) as usize;
    for (index, (weight, slot)) in plan.weights.iter().zip(&placement.slots).enumerate() {
        let values = reference::device_values(weight).map_err(|e| ExecError::Weight {
            index,
            reason: e.to_string(),
        })?;
        let start = slot.linear_start(placement.page_size) as usize;
        let bytes = values.len() * eb;
        if bytes as u64 != slot.bytes || start + bytes > image.len() {
            return Err(ExecError::Weight {
                index,
                reason: format!(
                    "{} values of {eb} bytes do not fill its {}-byte slot",
                    values.len(),
                    slot.bytes
                ),
            });
        }
        encode(&values, plan.precision, &mut image[start..start + bytes]);
    }
    Ok(image)
}

/// Device addresses of every weight, given the cache pages the model got (`pages[i]` is
/// the cache page holding the model's page `i`) in a slab of pages at `slab_base`.
/// A weight that runs past its first page needs the following cache pages to be the
/// next ones in the slab; otherwise this LOAD cannot be run from the pages.
pub fn weight_addresses(
    placement: &WeightPlacement,
    pages: &[u32],
    slab_base: u64,
) -> Result<Vec<u64>, ExecError> {
    let ps = placement.page_size;
    placement
        .slots
        .iter()
        .enumerate()
        .map(|(index, slot)| {
            let first = slot.page as usize;
            let span = (slot.offset + slot.bytes.max(1)).div_ceil(ps).max(1) as usize;
            let last = first + span - 1;
            let Some(run) = pages.get(first..=last) else {
                return Err(ExecError::Weight {
                    index,
                    reason: format!(
                        "its pages {first}..={last} are not all among the model's {} pages",
                        pages.len()
                    ),
                });
            };
            if let Some(gap) = run.windows(2).position(|w| w[1] != w[0].wrapping_add(1)) {
                return Err(ExecError::Weight {
                    index,
                    reason: format!(
                        "{} bytes run over model pages {first}..={last}, but cache pages {} \
                         and {} are not adjacent",
                        slot.bytes,
                        run[gap],
                        run[gap + 1]
                    ),
                });
            }
            Ok(slab_base + u64::from(run[0]) * ps + slot.offset)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda_plan::place_weights;

    #[test]
    fn half_conversion_matches_known_values() {
        for (v, bits) in [
            (0.0f32, 0x0000u16),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (0.5, 0x3800),
            (65504.0, 0x7bff),
            (65520.0, 0x7c00), // rounds up to infinity
            (1e6, 0x7c00),
            (f32::INFINITY, 0x7c00),
            (6.103_515_6e-5, 0x0400),     // smallest normal
            (5.960_464_5e-8, 0x0001),     // smallest subnormal
            (2.0e-8, 0x0000),             // below half the smallest subnormal
            (1.0 + 1.0 / 2048.0, 0x3c00), // a tie rounds to even
            (1.0 + 3.0 / 2048.0, 0x3c02), // a tie rounds to even (up)
            (0.1, 0x2e66),
        ] {
            assert_eq!(f16_bits(v), bits, "{v}");
        }
        assert_eq!(f16_bits(f32::NAN) & 0x7c00, 0x7c00);
        assert_ne!(f16_bits(f32::NAN) & 0x3ff, 0);
    }

    #[test]
    fn half_round_trips_and_stays_close() {
        for bits in [
            0x0000u16, 0x0001, 0x03ff, 0x0400, 0x3c00, 0x3555, 0x7bff, 0xbc00, 0x8001,
        ] {
            assert_eq!(f16_bits(f16_to_f32(bits)), bits, "{bits:#x}");
        }
        for i in 0..2000 {
            let v = (i as f32 - 1000.0) * 0.013_7;
            let back = f16_to_f32(f16_bits(v));
            assert!((back - v).abs() <= v.abs() / 1024.0 + 1e-7, "{v} -> {back}");
        }
        let mut bytes = [0u8; 6];
        encode(&[1.0, -0.5, 3.0], Precision::Fp16, &mut bytes);
        let mut back = [0f32; 3];
        decode(&bytes, Precision::Fp16, &mut back);
        assert_eq!(back, [1.0, -0.5, 3.0]);
        let mut bytes = [0u8; 8];
        encode(&[1.5, -7.25], Precision::Fp32, &mut bytes);
        let mut back = [0f32; 2];
        decode(&bytes, Precision::Fp32, &mut back);
        assert_eq!(back, [1.5, -7.25]);
    }

    #[test]
    fn weight_addresses_follow_pages_and_offsets() {
        let page = 4096;
        // Two small weights on page 0, one of 1.5 pages on pages 1-2, one small after it
        // in what is left of page 2.
        let p = place_weights(&[1000, 300, 6144, 512], page).unwrap();
        assert_eq!(p.pages, 3);
        let base = 0x7f00_0000_0000;
        let pages = [9, 4, 5];
        let a = weight_addresses(&p, &pages, base).unwrap();
        assert_eq!(a[0], base + 9 * page);
        assert_eq!(a[1], base + 9 * page + 1024, "256-aligned after 1000 bytes");
        assert_eq!(a[2], base + 4 * page, "starts its own page");
        assert_eq!(
            a[3],
            base + 5 * page + 2048,
            "after the big one, in its last page"
        );
        for (addr, slot) in a.iter().zip(&p.slots) {
            assert_eq!(addr % 256, 0);
            assert!(slot.offset + slot.bytes <= page || slot.offset == 0);
        }
        // The big weight's second page is not adjacent: refused with the pages named.
        let err = weight_addresses(&p, &[9, 4, 7], base).unwrap_err();
        assert!(
            matches!(&err, ExecError::Weight { index: 2, reason } if reason.contains("4 and 7")),
            "{err}"
        );
        // Fewer pages than the placement needs.
        assert!(matches!(
            weight_addresses(&p, &[9, 4], base),
            Err(ExecError::Weight { index: 2, .. })
        ));
    }

    #[test]
    fn packing_largest_first_saves_pages_without_overlap() {
        let page = 4096;
        let sizes = [2048, 3072, 2048, 1024, 10_000, 300];
        // In order: 2048 | 3072 | 2048+1024 | 10000 over 3 pages (+300 after it) = 6.
        assert_eq!(place_weights(&sizes, page).unwrap().pages, 6);
        let p = pack_weights(&sizes, page).unwrap();
        // 10000 on pages 0-2 (a 2048 fills what is left of page 2), 3072 + 1024 on page
        // 3, 2048 + 300 on page 4.
        assert_eq!(p.pages, 5);
        assert_eq!(
            (p.slots[4].page, p.slots[4].offset),
            (0, 0),
            "the big one first"
        );
        let mut spans: Vec<(u64, u64)> = p
            .slots
            .iter()
            .map(|s| (s.linear_start(page), s.linear_start(page) + s.bytes))
            .collect();
        for (slot, &bytes) in p.slots.iter().zip(&sizes) {
            assert_eq!(slot.bytes, bytes);
            assert_eq!(slot.offset % 256, 0);
            assert!(
                bytes > page || slot.offset + bytes <= page,
                "{slot:?} stays in its page"
            );
        }
        spans.sort_unstable();
        assert!(
            spans.windows(2).all(|w| w[0].1 <= w[1].0),
            "no overlap: {spans:?}"
        );
        assert!(spans.last().unwrap().1 <= u64::from(p.pages) * page);
        assert_eq!(pack_weights(&[], page).unwrap().pages, 0);
        assert!(pack_weights(&[1], 1000).is_err());
    }

    #[test]
    fn a_weight_that_ends_on_a_page_boundary_needs_one_page() {
        let p = place_weights(&[4096, 4096], 4096).unwrap();
        let a = weight_addresses(&p, &[3, 1], 0).unwrap();
        assert_eq!(a, vec![3 * 4096, 4096]);
    }
}
