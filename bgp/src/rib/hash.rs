//! A fast keyed hasher for the RIB's prefix- and pointer-keyed tables. Pure.
//!
//! std's SipHash costs more than the rest of a prefix's processing. This hasher mixes each
//! written word into the state with a folded 64×64→128-bit multiply (the construction
//! foldhash and aHash use) under a per-table random seed taken from std's `RandomState`, so
//! a peer cannot precompute colliding prefixes. Not a cryptographic hash.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};

use ipnetwork::IpNetwork;

const MUL: u64 = 0x5851_f42d_4c95_7f2d;

/// Builds [`FoldHasher`]s with one random seed per table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FoldState {
    seed: u64,
}

impl Default for FoldState {
    fn default() -> FoldState {
        FoldState {
            seed: RandomState::new().hash_one(0x0074_616f_7274_6965_u64) | 1,
        }
    }
}

impl FoldState {
    /// One keyed hash of a prefix with no `Hash`-trait plumbing: an IPv4 prefix is one
    /// 64-bit word (family, address, length), an IPv6 prefix three.
    #[inline]
    pub(crate) fn hash_prefix(&self, p: &IpNetwork) -> u64 {
        let mut h = self.build_hasher();
        match p {
            IpNetwork::V4(n) => {
                h.mix((1 << 40) | (u64::from(u32::from(n.ip())) << 8) | u64::from(n.prefix()));
            }
            IpNetwork::V6(n) => {
                let a = u128::from(n.ip());
                h.mix(a as u64);
                h.mix((a >> 64) as u64);
                h.mix((2 << 40) | u64::from(n.prefix()));
            }
        }
        h.finish()
    }
}

impl BuildHasher for FoldState {
    type Hasher = FoldHasher;
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            state: self.seed,
            seed: self.seed,
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FoldHasher {
    state: u64,
    seed: u64,
}

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let full = u128::from(a).wrapping_mul(u128::from(b));
    (full as u64) ^ ((full >> 64) as u64)
}

impl FoldHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = fold(self.state ^ word, MUL ^ self.seed.rotate_left(17));
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold(self.state, self.seed)
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, FoldState>;
pub(crate) type FastSet<K> = HashSet<K, FoldState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_hash_spreads_and_tells_lengths_and_families_apart() {
        let s = FoldState::default();
        let p = |t: &str| t.parse::<IpNetwork>().expect("prefix");
        assert_eq!(
            s.hash_prefix(&p("10.0.0.0/26")),
            s.hash_prefix(&p("10.0.0.0/26"))
        );
        assert_ne!(
            s.hash_prefix(&p("10.0.0.0/26")),
            s.hash_prefix(&p("10.0.0.0/27"))
        );
        assert_ne!(
            s.hash_prefix(&p("10.0.0.0/26")),
            s.hash_prefix(&p("::a00:0/26"))
        );
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            let n = IpNetwork::new(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 6)).into(), 26)
                .expect("prefix");
            seen.insert(s.hash_prefix(&n) & 0xffff);
        }
        assert!(seen.len() > 8_000, "{} distinct low halves", seen.len());
    }

    #[test]
    fn distinct_prefixes_spread_and_equal_ones_agree() {
        let s = FoldState::default();
        let p = |t: &str| t.parse::<IpNetwork>().expect("prefix");
        assert_eq!(s.hash_one(p("10.0.0.0/26")), s.hash_one(p("10.0.0.0/26")));
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            let n = IpNetwork::new(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 6)).into(), 26)
                .expect("prefix");
            // Low 16 bits pick buckets in hashbrown: they must differ too.
            seen.insert(s.hash_one(n) & 0xffff);
        }
        assert!(seen.len() > 8_000, "{} distinct low halves", seen.len());
        assert_ne!(s.hash_one(p("10.0.0.0/26")), s.hash_one(p("10.0.0.0/27")));
    }
}
