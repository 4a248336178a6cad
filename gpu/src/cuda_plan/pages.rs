//! Placing a plan's weights in the model's pages of the device page cache: each tensor
//! at a (page, offset) 256-byte aligned; a tensor larger than a page starts on a fresh
//! page and takes a run of consecutive pages *of the model's allocation*. The page
//! cache hands out pages anywhere, so such a tensor is contiguous on the device only
//! when those pages are (a virtual-memory mapping, or a cache built from one slab with
//! consecutive pages); the executor must check it or copy the tensor.

use super::arena::align_up;

/// Where one weight tensor lives: page `page` (an index into the model's own
/// allocation, not the cache), `offset` bytes in, `bytes` long (running into the
/// following pages when longer than what is left of the page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightSlot {
    /// Index of the first page in the model's allocation.
    pub page: u32,
    /// Byte offset in that page (a multiple of [`super::ALIGN`]).
    pub offset: u64,
    /// Length in bytes.
    pub bytes: u64,
}

impl WeightSlot {
    /// The position in the model's pages seen as one run: `page * page_size + offset`.
    pub fn linear_start(&self, page_size: u64) -> u64 {
        u64::from(self.page) * page_size + self.offset
    }
}

/// The placement of every weight of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightPlacement {
    /// Page size the placement was made for.
    pub page_size: u64,
    /// One slot per weight, in the plan's weights order.
    pub slots: Vec<WeightSlot>,
    /// Pages the model needs.
    pub pages: u32,
}

/// Why weights could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The page size is zero or not a multiple of the alignment.
    #[error("page size {0} is not a positive multiple of {align}", align = super::ALIGN)]
    BadPageSize(u64),
    /// More pages than a `u32` counts.
    #[error("the weights need more than u32::MAX pages")]
    TooManyPages,
}

/// Place tensors of the given sizes, in order: first fit in the current page (aligned);
/// a tensor that does not fit in what is left starts the next page; one larger than a
/// page starts on a fresh page and takes `ceil(bytes / page_size)` consecutive pages.
pub fn place_weights(sizes: &[u64], page_size: u64) -> Result<WeightPlacement, PlacementError> {
    if page_size == 0 || !page_size.is_multiple_of(super::ALIGN) {
        return Err(PlacementError::BadPageSize(page_size));
    }
    let mut slots = Vec::with_capacity(sizes.len());
    // Next free linear position in the model's pages.
    let mut cursor: u64 = 0;
    for &bytes in sizes {
        let mut start = align_up(cursor);
        let used_in_page = start % page_size;
        if used_in_page != 0 && used_in_page + bytes > page_size {
            start = start.div_ceil(page_size) * page_size;
        }
        let page = u32::try_from(start / page_size).map_err(|_| PlacementError::TooManyPages)?;
        slots.push(WeightSlot {
            page,
            offset: start % page_size,
            bytes,
        });
        cursor = start + bytes;
    }
    let pages =
        u32::try_from(cursor.div_ceil(page_size)).map_err(|_| PlacementError::TooManyPages)?;
    Ok(WeightPlacement {
        page_size,
        slots,
        pages,
    })
}
