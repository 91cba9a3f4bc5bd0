//! The Merkle tree over the log's entry hashes, as in RFC 6962 (Certificate
//! Transparency): what the provider anchors, and what inclusion proofs climb.
//!
//! Leaf `i` (from 0: entry `seq = i + 1`) is `SHA-256(0x00 ‖ h_seq)`, an inner node
//! `SHA-256(0x01 ‖ left ‖ right)`. The tree of the first `n` entries splits at the
//! largest power of two below `n`: its left part is complete, its right part is the
//! tree of the rest, recursively. So the tree of any `n` is made of the *complete
//! subtrees* ([`Node`]s) of `n`'s binary decomposition, and a complete subtree, once
//! its last leaf is appended, never changes: the backends store each one as it
//! completes, so that the root of any prefix and the inclusion path of any entry cost
//! O(log n) stored hashes ([`decompose`], [`path_ranges`]).

use alloy_primitives::B256;
use sha2::{Digest, Sha256};

/// The byte before a leaf's input.
pub const LEAF_PREFIX: u8 = 0x00;
/// The byte before an inner node's two children.
pub const NODE_PREFIX: u8 = 0x01;

/// The root of the tree of no entries: SHA-256 of nothing (RFC 6962).
pub const EMPTY_ROOT: B256 = B256::new([
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
]);

fn sha256(parts: &[&[u8]]) -> B256 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    B256::from(<[u8; 32]>::from(hasher.finalize()))
}

/// The leaf of an entry: `SHA-256(0x00 ‖ entry hash)`.
pub fn leaf_hash(entry_hash: &B256) -> B256 {
    sha256(&[&[LEAF_PREFIX], entry_hash.as_slice()])
}

/// An inner node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &B256, right: &B256) -> B256 {
    sha256(&[&[NODE_PREFIX], left.as_slice(), right.as_slice()])
}

/// A complete subtree: the `2^level` leaves from `index · 2^level` (a leaf at level 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    /// Its height: it covers `2^level` leaves.
    pub level: u8,
    /// Its position among the subtrees of its level, from 0.
    pub index: u64,
}

impl Node {
    /// The first leaf it covers.
    pub const fn first_leaf(self) -> u64 {
        self.index << self.level
    }

    /// How many leaves it covers.
    pub const fn width(self) -> u64 {
        1 << self.level
    }
}

/// The complete subtrees that make up leaves `lo..hi`, left to right, each as large as
/// its position allows. For the ranges of the RFC 6962 recursion (the whole tree, and
/// every part of a split), the root of the range is [`fold`] of their hashes.
pub fn decompose(mut lo: u64, hi: u64) -> Vec<Node> {
    let mut out = Vec::new();
    while lo < hi {
        let fits = 63 - (hi - lo).leading_zeros();
        let aligned = if lo == 0 { 63 } else { lo.trailing_zeros() };
        let level = fits.min(aligned);
        out.push(Node { level: level as u8, index: lo >> level });
        lo += 1 << level;
    }
    out
}

/// The root of a range from the hashes of its [`decompose`]d subtrees, left to right:
/// `node(s_1, node(s_2, … node(s_{k-1}, s_k)))`; [`EMPTY_ROOT`] for none.
pub fn fold(subtrees: &[B256]) -> B256 {
    let Some((last, rest)) = subtrees.split_last() else { return EMPTY_ROOT };
    rest.iter().rev().fold(*last, |acc, left| node_hash(left, &acc))
}

/// The ranges of leaves whose roots make the inclusion path of leaf `leaf` in the tree
/// of the first `size` leaves, from the leaf upwards (RFC 6962 `PATH`). Empty when
/// `leaf >= size`.
pub fn path_ranges(leaf: u64, size: u64) -> Vec<(u64, u64)> {
    let mut top_down = Vec::new();
    let (mut lo, mut hi) = (0, size);
    if leaf >= size {
        return top_down;
    }
    while hi - lo > 1 {
        let split = 1u64 << (63 - (hi - lo - 1).leading_zeros());
        if leaf < lo + split {
            top_down.push((lo + split, hi));
            hi = lo + split;
        } else {
            top_down.push((lo, lo + split));
            lo += split;
        }
    }
    top_down.reverse();
    top_down
}

/// The root that the inclusion path `path` gives for leaf `leaf_hash` at index `leaf`
/// in a tree of `size` leaves (RFC 9162, 2.1.3.2); `None` when the path is not as long
/// as that position needs.
pub fn root_from_path(leaf: u64, size: u64, leaf_hash: B256, path: &[B256]) -> Option<B256> {
    if leaf >= size {
        return None;
    }
    let (mut f, mut s, mut r) = (leaf, size - 1, leaf_hash);
    for p in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// The right edge of a tree being appended to: the hashes of the complete subtrees of
/// its size's decomposition. Appending a leaf completes the subtrees to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    subtrees: Vec<B256>,
}

impl Frontier {
    /// The frontier of a tree of `size` leaves whose [`decompose`]`(0, size)` subtrees
    /// hash to `subtrees`; `None` when there are not as many hashes as subtrees.
    pub fn new(size: u64, subtrees: Vec<B256>) -> Option<Self> {
        (subtrees.len() == size.count_ones() as usize).then_some(Self { size, subtrees })
    }

    /// How many leaves the tree has.
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// Appends the leaf of an entry hashed `entry_hash`; returns the subtrees it
    /// completed (the leaf first, then each parent up), to store.
    pub fn push(&mut self, entry_hash: &B256) -> Vec<(Node, B256)> {
        let mut hash = leaf_hash(entry_hash);
        let after = self.size + 1;
        let mut done = vec![(Node { level: 0, index: self.size }, hash)];
        let mut level = 0u8;
        let mut below = self.size;
        while below & 1 == 1 {
            let left = self.subtrees.pop().expect("one subtree per set bit");
            hash = node_hash(&left, &hash);
            level += 1;
            below >>= 1;
            done.push((Node { level, index: (after >> level) - 1 }, hash));
        }
        self.subtrees.push(hash);
        self.size = after;
        done
    }

    /// The root of the tree.
    pub fn root(&self) -> B256 {
        fold(&self.subtrees)
    }
}

/// Whether the backends store `node`'s hash: every complete subtree but the leaves.
/// A leaf is `SHA-256(0x00 ‖ h)` of an entry hash `h` that the entry's own row already
/// holds, so storing it would repeat every entry hash; a reader computes it from the
/// row ([`leaf_hash`]).
pub const fn is_stored(node: Node) -> bool {
    node.level > 0
}

/// How many leaves a stored tree covers, from the index of its last stored subtree of
/// level 1 (`None`: none stored): the tree of the first `n` entries stores every
/// level-1 subtree of `decompose(0, n)`, so it covers `n` rounded down to even.
pub fn stored_width(last_level_one: Option<u64>) -> u64 {
    last_level_one.map_or(0, |i| 2 * (i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's `MTH`, straight from its definition, over leaf hashes.
    fn reference_root(leaves: &[B256]) -> B256 {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaves[0],
            n => {
                let k = 1 << (63 - (n as u64 - 1).leading_zeros());
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    /// RFC 6962's `PATH`, straight from its definition.
    fn reference_path(m: usize, leaves: &[B256]) -> Vec<B256> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = 1 << (63 - (n as u64 - 1).leading_zeros());
        if m < k {
            let mut p = reference_path(m, &leaves[..k]);
            p.push(reference_root(&leaves[k..]));
            p
        } else {
            let mut p = reference_path(m - k, &leaves[k..]);
            p.push(reference_root(&leaves[..k]));
            p
        }
    }

    fn entry_hashes(n: u64) -> Vec<B256> {
        (0..n).map(|i| sha256(&[b"entry", &i.to_be_bytes()])).collect()
    }

    /// A tree built with a [`Frontier`], its stored subtrees looked up by [`Node`].
    fn built(n: u64) -> (Frontier, std::collections::HashMap<Node, B256>) {
        let mut frontier = Frontier::new(0, Vec::new()).unwrap();
        let mut stored = std::collections::HashMap::new();
        for h in entry_hashes(n) {
            for (node, hash) in frontier.push(&h) {
                assert!(stored.insert(node, hash).is_none(), "{node:?} completed twice");
            }
        }
        (frontier, stored)
    }

    fn hex(s: &str) -> B256 {
        s.parse().unwrap()
    }

    #[test]
    fn the_certificate_transparency_vectors() {
        // The leaves and roots of Certificate Transparency's reference tests
        // (merkle_tree_test.cc), leaf inputs as raw bytes.
        let inputs: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves: Vec<B256> = inputs.iter().map(|d| sha256(&[&[LEAF_PREFIX], d])).collect();
        assert_eq!(fold(&[]), sha256(&[]));
        for (n, root) in (1..=8).zip(roots) {
            assert_eq!(reference_root(&leaves[..n]), hex(root), "size {n}");
            let subtrees: Vec<B256> = decompose(0, n as u64)
                .iter()
                .map(|node| {
                    let (lo, w) = (node.first_leaf() as usize, node.width() as usize);
                    reference_root(&leaves[lo..lo + w])
                })
                .collect();
            assert_eq!(fold(&subtrees), hex(root), "size {n}, from its subtrees");
        }
    }

    #[test]
    fn known_answers_for_entry_hashes() {
        // Computed independently (Python hashlib) for leaves over entry hashes
        // SHA-256("entry" ‖ i as u64 big-endian).
        let cases = [
            (1, "d56a0394f5b6297f32930f3c5317a95005fbe79ae739675b98529d4b7678913c"),
            (2, "cfe7f409982aece2b445c1728fb5c53754715b17fac51779e3c11d6a15a19a54"),
            (3, "415dc412c2d13e99954b4cb505cc7d0fb3c1675604b733487d6018489d14fc52"),
            (5, "15ec921c55b437426ffe5b472168e17dd0ef143fd439d4de0e5b7e98b42991ac"),
            (7, "dacbe62f6c6822d17c056c5930eaae051a749b30b052b038cce5c909b369c202"),
            (8, "0a0c1bb85e766787da0b078576852a8890ff3dd8be95940aea37d1bb4c7c9948"),
            (20, "fbf5e26b86436623c57c5ee4827aadb45661dfec16a69a71346166466e57cbc6"),
        ];
        for (n, root) in cases {
            assert_eq!(built(n).0.root(), hex(root), "size {n}");
        }
        // The path of entry 3 (leaf 2) in the tree of 5: its sibling leaf 3, the node
        // of leaves 0-1 (the root of 2), then leaf 4.
        let (_, stored) = built(5);
        let path: Vec<B256> = path_ranges(2, 5)
            .iter()
            .map(|&(lo, hi)| fold(&decompose(lo, hi).iter().map(|x| stored[x]).collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            path,
            [
                hex("ced577e8165ef88b9c8d792757ccc1d901471bb2c59713fd0594cb697b780aef"),
                hex("cfe7f409982aece2b445c1728fb5c53754715b17fac51779e3c11d6a15a19a54"),
                hex("cf204ade99c5653ddbffb295c30e3e1fe82e46680e887b72d962017d48952739"),
            ]
        );
    }

    #[test]
    fn decompositions_cover_ranges_with_aligned_subtrees() {
        assert!(decompose(0, 0).is_empty());
        assert_eq!(decompose(0, 1), [Node { level: 0, index: 0 }]);
        assert_eq!(decompose(0, 6), [Node { level: 2, index: 0 }, Node { level: 1, index: 2 }]);
        assert_eq!(
            decompose(8, 15),
            [
                Node { level: 2, index: 2 },
                Node { level: 1, index: 6 },
                Node { level: 0, index: 14 }
            ]
        );
        for n in 0..300u64 {
            let nodes = decompose(0, n);
            assert_eq!(nodes.len(), n.count_ones() as usize);
            let mut at = 0;
            for node in nodes {
                assert_eq!(node.first_leaf(), at);
                at += node.width();
            }
            assert_eq!(at, n);
        }
    }

    #[test]
    fn stored_subtrees_give_every_root_and_path() {
        for n in 1..=20u64 {
            let (frontier, stored) = built(n);
            let leaves: Vec<B256> = entry_hashes(n).iter().map(leaf_hash).collect();
            assert_eq!(frontier.size(), n);
            assert_eq!(frontier.root(), reference_root(&leaves), "root of {n}");
            // Every prefix's root, from the stored subtrees only.
            for size in 1..=n {
                let hashes: Vec<B256> = decompose(0, size).iter().map(|x| stored[x]).collect();
                assert_eq!(fold(&hashes), reference_root(&leaves[..size as usize]));
            }
            // Every leaf's path in every prefix.
            for size in 1..=n {
                for m in 0..size {
                    let path: Vec<B256> = path_ranges(m, size)
                        .iter()
                        .map(|&(lo, hi)| {
                            fold(&decompose(lo, hi).iter().map(|x| stored[x]).collect::<Vec<_>>())
                        })
                        .collect();
                    let prefix = &leaves[..size as usize];
                    assert_eq!(path, reference_path(m as usize, prefix), "leaf {m} of {size}");
                    let root = root_from_path(m, size, leaves[m as usize], &path);
                    assert_eq!(root, Some(reference_root(prefix)), "leaf {m} of {size}");
                    // A path one hash short or long does not reach a root.
                    if let Some((_, short)) = path.split_last() {
                        assert_eq!(root_from_path(m, size, leaves[m as usize], short), None);
                    }
                    let mut long = path.clone();
                    long.push(leaves[0]);
                    assert_eq!(root_from_path(m, size, leaves[m as usize], &long), None);
                }
            }
        }
    }

    #[test]
    fn paths_are_logarithmic() {
        for size in [1u64, 2, 3, 1000, 100_000, 1 << 20, (1 << 40) + 12_345, u64::MAX / 2] {
            let bound = 64 - (size - 1).leading_zeros() as usize; // ceil(log2(size))
            for leaf in [0, size / 3, size / 2, size - 1] {
                let ranges = path_ranges(leaf, size);
                assert!(ranges.len() <= bound, "leaf {leaf} of {size}");
                let stored: usize = ranges.iter().map(|&(lo, hi)| decompose(lo, hi).len()).sum();
                assert!(stored <= 2 * bound.max(1), "leaf {leaf} of {size}: {stored} reads");
            }
        }
        assert!(path_ranges(3, 3).is_empty());
    }

    #[test]
    fn leaves_are_not_stored_and_the_stored_width_is_even() {
        let (_, stored) = built(13);
        assert_eq!(stored.keys().filter(|n| is_stored(**n)).count(), 13 - 3);
        assert!(!is_stored(Node { level: 0, index: 4 }));
        let last = stored.keys().filter(|n| n.level == 1).map(|n| n.index).max();
        assert_eq!(stored_width(last), 12);
        assert_eq!(stored_width(None), 0);
    }
}
