//! The per-device weights page cache: a fixed number of equal pages (16 MiB by default),
//! handed out non-contiguously from a free list, as in the original Clockwork. A model's
//! weights take `profile.pages(page_size)` pages anywhere in the cache, so the cache never
//! fragments. The device never evicts on its own: an allocation that does not fit fails.

/// Pages owned by one resident (or loading) model. Not `Clone`: it is moved back into
/// [`PageCache::free`], so a page cannot be freed twice.
#[derive(Debug, PartialEq, Eq)]
pub struct PageAllocation {
    pages: Vec<u32>,
}

impl PageAllocation {
    /// The page indices, in weights order (page `i` holds bytes `i*page_size..`).
    pub fn pages(&self) -> &[u32] {
        &self.pages
    }

    /// Number of pages.
    pub fn len(&self) -> u32 {
        // An allocation never exceeds the cache's page count, which is a u32.
        u32::try_from(self.pages.len()).unwrap_or(u32::MAX)
    }

    /// True when it holds no page.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}

/// A fixed-size cache of equal pages with exact accounting:
/// `free_pages() + used_pages() == total_pages()` at all times.
#[derive(Debug, Clone)]
pub struct PageCache {
    page_size: u64,
    /// Free page indices; allocation pops from the end.
    free: Vec<u32>,
    /// `in_use[p]` is true while page `p` belongs to an allocation.
    in_use: Vec<bool>,
}

impl PageCache {
    /// A cache of `cache_bytes / page_size` pages (rounded down). A zero `page_size`
    /// yields an empty cache.
    pub fn new(cache_bytes: u64, page_size: u64) -> Self {
        let total = cache_bytes
            .checked_div(page_size)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
        Self::with_pages(total, page_size)
    }

    /// A cache of exactly `total` pages of `page_size` bytes.
    pub fn with_pages(total: u32, page_size: u64) -> Self {
        Self {
            page_size,
            // Reversed so that a fresh cache hands out 0, 1, 2, ...
            free: (0..total).rev().collect(),
            in_use: vec![false; total as usize],
        }
    }

    /// Bytes per page.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Pages in the cache.
    pub fn total_pages(&self) -> u32 {
        // `in_use` was built from a u32 count.
        u32::try_from(self.in_use.len()).unwrap_or(u32::MAX)
    }

    /// Pages free now.
    pub fn free_pages(&self) -> u32 {
        // `free` never holds more entries than `in_use`.
        u32::try_from(self.free.len()).unwrap_or(u32::MAX)
    }

    /// Pages allocated now.
    pub fn used_pages(&self) -> u32 {
        self.total_pages() - self.free_pages()
    }

    /// Take `n` pages, all or nothing: `None` when fewer than `n` are free.
    pub fn alloc(&mut self, n: u32) -> Option<PageAllocation> {
        let n = n as usize;
        if n > self.free.len() {
            return None;
        }
        let pages = self.free.split_off(self.free.len() - n);
        for &p in &pages {
            self.in_use[p as usize] = true;
        }
        Some(PageAllocation { pages })
    }

    /// Give an allocation's pages back.
    ///
    /// An allocation from another cache is a bug; its pages that are out of range or
    /// not in use here are ignored (and trip a debug assertion) so that the accounting
    /// stays exact.
    pub fn free(&mut self, allocation: PageAllocation) {
        for p in allocation.pages {
            match self.in_use.get_mut(p as usize) {
                Some(used @ true) => {
                    *used = false;
                    self.free.push(p);
                }
                _ => debug_assert!(false, "page {p} freed but not allocated"),
            }
        }
    }

    /// Check the internal invariants (free list and use map agree). For tests.
    pub fn is_consistent(&self) -> bool {
        let mut seen = vec![false; self.in_use.len()];
        for &p in &self.free {
            let Some(s) = seen.get_mut(p as usize) else {
                return false;
            };
            if *s || self.in_use[p as usize] {
                return false;
            }
            *s = true;
        }
        let used = self.in_use.iter().filter(|u| **u).count();
        used + self.free.len() == self.in_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::model::{resnet152, resnet50};
    use clockwork_core::DEFAULT_PAGE_SIZE;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn default_cache_has_1376_pages() {
        let c = PageCache::new(23_085_449_216, DEFAULT_PAGE_SIZE);
        assert_eq!(c.total_pages(), 1376);
        assert_eq!(c.free_pages(), 1376);
        assert_eq!(c.page_size(), DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn insufficient_cache_is_all_or_nothing() {
        let mut c = PageCache::with_pages(20, DEFAULT_PAGE_SIZE);
        let r152 = resnet152().pages(DEFAULT_PAGE_SIZE); // 15 pages
        let r50 = resnet50().pages(DEFAULT_PAGE_SIZE); // 7 pages
        let a = c.alloc(r152).expect("15 of 20 pages fit");
        assert_eq!(a.len(), 15);
        assert!(c.alloc(r50).is_none(), "7 pages do not fit in 5");
        assert_eq!(c.free_pages(), 5, "a failed alloc takes nothing");
        c.free(a);
        assert_eq!(c.free_pages(), 20);
        assert!(c.alloc(r50).is_some());
        assert!(c.is_consistent());
    }

    #[test]
    fn allocation_after_frees_is_non_contiguous() {
        let mut c = PageCache::with_pages(6, 1);
        let a = c.alloc(2).unwrap();
        let b = c.alloc(2).unwrap();
        let d = c.alloc(2).unwrap();
        c.free(a);
        c.free(d);
        let e = c.alloc(4).expect("4 free pages in two holes");
        let mut pages = e.pages().to_vec();
        pages.sort_unstable();
        assert_eq!(pages, vec![0, 1, 4, 5]);
        assert_eq!(c.free_pages(), 0);
        c.free(b);
        c.free(e);
        assert!(c.is_consistent());
        assert_eq!(c.free_pages(), 6);
    }

    #[test]
    fn zero_page_size_is_an_empty_cache() {
        let mut c = PageCache::new(1 << 30, 0);
        assert_eq!(c.total_pages(), 0);
        assert!(c.alloc(1).is_none());
    }

    proptest! {
        /// Random alloc/free sequences: accounting is exact, no page is ever in two
        /// live allocations, and an alloc fails exactly when too few pages are free.
        #[test]
        fn accounting_is_exact(total in 0u32..64, ops in prop::collection::vec((any::<bool>(), 0u32..20, any::<prop::sample::Index>()), 0..200)) {
            let mut c = PageCache::with_pages(total, 4096);
            let mut live: Vec<PageAllocation> = Vec::new();
            for (is_alloc, n, which) in ops {
                if is_alloc || live.is_empty() {
                    let free_before = c.free_pages();
                    match c.alloc(n) {
                        Some(a) => {
                            prop_assert!(n <= free_before);
                            prop_assert_eq!(a.len(), n);
                            prop_assert_eq!(c.free_pages(), free_before - n);
                            live.push(a);
                        }
                        None => {
                            prop_assert!(n > free_before);
                            prop_assert_eq!(c.free_pages(), free_before);
                        }
                    }
                } else {
                    let a = live.swap_remove(which.index(live.len()));
                    let before = c.free_pages();
                    let n = a.len();
                    c.free(a);
                    prop_assert_eq!(c.free_pages(), before + n);
                }
                prop_assert_eq!(c.free_pages() + c.used_pages(), c.total_pages());
                let held: u32 = live.iter().map(PageAllocation::len).sum();
                prop_assert_eq!(held, c.used_pages());
                let mut seen = HashSet::new();
                for p in live.iter().flat_map(|a| a.pages()) {
                    prop_assert!(*p < total);
                    prop_assert!(seen.insert(*p), "page {} in two allocations", p);
                }
                prop_assert!(c.is_consistent());
            }
        }
    }
}
