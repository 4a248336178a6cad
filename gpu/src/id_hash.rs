//! A fast hasher for small integer ids (model ids): one multiplication instead of
//! SipHash. Ids come from the controller, not from an adversary who could choose them to
//! collide, and a worker or a simulator looks a model up several times per action, so
//! the cost of the default hasher showed up in simulations of 100,000 models.

use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative (Fibonacci) hashing of integer keys; other input is folded in 8 bytes
/// at a time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

/// Golden-ratio multiplier: spreads consecutive ids over the high bits too.
const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
    }
}

/// Builds [`IdHasher`]s, for `HashMap<ModelId, _, BuildIdHasher>`.
pub(crate) type BuildIdHasher = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use clockwork_core::ModelId;
    use std::collections::{HashMap, HashSet};
    use std::hash::BuildHasher;

    #[test]
    fn consecutive_ids_hash_apart_and_maps_work() {
        let b = BuildIdHasher::default();
        let hashes: HashSet<u64> = (0..10_000u32).map(|i| b.hash_one(ModelId(i))).collect();
        assert_eq!(hashes.len(), 10_000);
        // The top 7 bits (hashbrown's tag) vary too.
        let tags: HashSet<u64> = (0..1_000u32)
            .map(|i| b.hash_one(ModelId(i)) >> 57)
            .collect();
        assert!(tags.len() > 100, "{}", tags.len());
        let mut m: HashMap<ModelId, u32, BuildIdHasher> = HashMap::default();
        for i in 0..1000 {
            m.insert(ModelId(i * 7), i);
        }
        assert_eq!(m.get(&ModelId(70)), Some(&10));
        assert_eq!(m.get(&ModelId(71)), None);
        assert_eq!(b.hash_one("abc"), b.hash_one("abc"));
        assert_ne!(b.hash_one("abc"), b.hash_one("abd"));
    }
}
