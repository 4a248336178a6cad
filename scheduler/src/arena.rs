//! A generational arena: dense `u32` slots reused through a free list, with a
//! generation per slot so that a stale key (to a request already answered, an action
//! already retired) is detected instead of aliasing the slot's next occupant.
//!
//! Requests and in-flight actions live here; queues, timers and action ids hold keys.

/// A key into an [`Arena`]: slot index plus the generation it was issued for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Key {
    idx: u32,
    generation: u32,
}

impl Key {
    /// Packs the key into a `u64` (generation high, index low): action ids are these.
    pub(crate) const fn to_u64(self) -> u64 {
        ((self.generation as u64) << 32) | self.idx as u64
    }

    /// The inverse of [`Key::to_u64`].
    pub(crate) const fn from_u64(v: u64) -> Self {
        Self {
            idx: v as u32,
            generation: (v >> 32) as u32,
        }
    }
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Slots of `T` addressed by [`Key`].
#[derive(Debug)]
pub(crate) struct Arena<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Arena<T> {
    pub(crate) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Stores `value` and returns its key.
    pub(crate) fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if let Some(idx) = self.free.pop() {
            let slot = &mut self.slots[idx as usize];
            slot.value = Some(value);
            return Key {
                idx,
                generation: slot.generation,
            };
        }
        // More than 4 billion live entries would exhaust memory long before the index.
        let idx = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        Key { idx, generation: 0 }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.idx as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.idx as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_mut()
    }

    pub(crate) fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Removes and returns the value; the slot's generation moves on so `key` goes stale.
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.idx as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.idx);
        self.len -= 1;
        Some(value)
    }

    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    /// Keys of every live entry (slot order).
    pub(crate) fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.value.as_ref().map(|_| Key {
                // Slot indices were issued as u32, so they fit.
                idx: i as u32,
                generation: s.generation,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss_after_reuse() {
        let mut a = Arena::new();
        let k1 = a.insert(1);
        assert_eq!(a.remove(k1), Some(1));
        let k2 = a.insert(2);
        assert_eq!(k1.idx, k2.idx, "slot reused");
        assert_eq!(a.get(k1), None);
        assert_eq!(a.remove(k1), None);
        assert_eq!(a.get(k2), Some(&2));
        assert_eq!(Key::from_u64(k2.to_u64()), k2);
        assert_eq!(a.len(), 1);
        assert_eq!(a.keys().collect::<Vec<_>>(), vec![k2]);
    }
}
