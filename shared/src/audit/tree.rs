//! The Merkle tree of a chain: RFC 6962/9162 hashing (leaf `SHA-256(0x00 || data)`, node
//! `SHA-256(0x01 || left || right)`), inclusion and consistency proofs, computed with
//! `tlog_tiles` (a port of Go's `sumdb/tlog`).
//!
//! A stored tree keeps its *stored hashes*: every complete subtree's hash, numbered by
//! [`tlog_tiles::stored_hash_index`] (about two per leaf). Appending, proving and computing a
//! root each need only a few of them, and which ones depends only on the sizes involved, so a
//! store can fetch them first ([`frontier`], [`inclusion_needs`], [`consistency_needs`]) and then
//! compute without I/O.

use std::cell::RefCell;
use std::collections::BTreeMap;

pub use tlog_tiles::Hash;
use tlog_tiles::HashReader;

/// Why a tree computation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// A stored hash the computation needs was not given.
    #[error("stored hash {0} is missing")]
    MissingHash(u64),
    /// The sizes or the index are out of range (e.g. a leaf past the tree's end).
    #[error("{0}")]
    OutOfRange(&'static str),
}

/// The RFC 6962 hash of a leaf holding `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    tlog_tiles::record_hash(data)
}

/// The root of the empty tree (SHA-256 of nothing).
pub const EMPTY_ROOT: Hash = tlog_tiles::EMPTY_HASH;

/// Parses a base64 hash (as checkpoints and proofs carry them).
pub fn parse_hash(text: &str) -> Option<Hash> {
    Hash::parse_hash(text).ok()
}

/// Stored hashes by index, as a [`HashReader`] that fails on any it was not given.
#[derive(Clone, Debug, Default)]
pub struct Hashes(pub BTreeMap<u64, Hash>);

impl Hashes {
    pub fn new(pairs: impl IntoIterator<Item = (u64, Hash)>) -> Hashes {
        Hashes(pairs.into_iter().collect())
    }
}

impl HashReader for Hashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| {
                self.0
                    .get(i)
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

/// Notes which stored hashes a computation asks for, answering with placeholders.
#[derive(Default)]
struct Recorder(RefCell<Vec<u64>>);

impl HashReader for Recorder {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.0.borrow_mut().extend_from_slice(indexes);
        Ok(vec![Hash::default(); indexes.len()])
    }
}

/// The first index of `indexes` missing from `hashes`, as the error of a failed computation.
fn missing(indexes: &[u64], hashes: &Hashes) -> TreeError {
    indexes
        .iter()
        .find(|i| !hashes.0.contains_key(i))
        .map_or(TreeError::OutOfRange("bad tree arithmetic"), |i| {
            TreeError::MissingHash(*i)
        })
}

/// The stored hashes of the complete subtrees that make up a tree of `size` leaves, left to
/// right: its root is computed from them, and so is every leaf appended after them.
pub fn frontier(size: u64) -> Vec<u64> {
    tlog_tiles::sub_tree_index(0, size, Vec::new())
}

/// The root of the tree of `size` leaves, from (at least) its [`frontier`].
pub fn root(size: u64, hashes: &Hashes) -> Result<Hash, TreeError> {
    tlog_tiles::tree_hash(size, hashes).map_err(|_| missing(&frontier(size), hashes))
}

/// What appending leaves to a tree gives.
#[derive(Clone, Debug)]
pub struct Appended {
    /// New stored hashes, `(index, hash)`, in index order.
    pub stored: Vec<(u64, Hash)>,
    pub size: u64,
    pub root: Hash,
}

/// Appends `leaves` (leaf hashes) to the tree of `size` leaves whose [`frontier`] hashes are
/// in `hashes`.
pub fn append(size: u64, hashes: &Hashes, leaves: &[Hash]) -> Result<Appended, TreeError> {
    let mut all = hashes.clone();
    let mut stored = Vec::with_capacity(leaves.len() * 2);
    for (offset, leaf) in leaves.iter().enumerate() {
        let n = size + offset as u64;
        let new = tlog_tiles::stored_hashes_for_record_hash(n, *leaf, &all)
            .map_err(|_| missing(&frontier(n), &all))?;
        let first = tlog_tiles::stored_hash_index(0, n);
        for (i, hash) in new.into_iter().enumerate() {
            all.0.insert(first + i as u64, hash);
            stored.push((first + i as u64, hash));
        }
    }
    let size = size + leaves.len() as u64;
    Ok(Appended {
        root: root(size, &all)?,
        stored,
        size,
    })
}

/// The stored hashes an inclusion proof of leaf `index` in the tree of `size` leaves needs.
pub fn inclusion_needs(size: u64, index: u64) -> Result<Vec<u64>, TreeError> {
    let recorder = Recorder::default();
    tlog_tiles::prove_record(size, index, &recorder)
        .map_err(|_| TreeError::OutOfRange("the leaf is not in a tree of that size"))?;
    Ok(recorder.0.into_inner())
}

/// The inclusion proof (RFC 9162 §2.1.3, the audit path, bottom up) of leaf `index` in the tree
/// of `size` leaves, from the hashes [`inclusion_needs`] names.
pub fn inclusion_proof(size: u64, index: u64, hashes: &Hashes) -> Result<Vec<Hash>, TreeError> {
    let needs = inclusion_needs(size, index)?;
    tlog_tiles::prove_record(size, index, hashes).map_err(|_| missing(&needs, hashes))
}

/// The stored hashes a consistency proof from the tree of `old` leaves to that of `new` needs.
pub fn consistency_needs(new: u64, old: u64) -> Result<Vec<u64>, TreeError> {
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let recorder = Recorder::default();
    tlog_tiles::prove_tree(new, old, &recorder)
        .map_err(|_| TreeError::OutOfRange("sizes must satisfy 0 <= from <= to"))?;
    Ok(recorder.0.into_inner())
}

/// The consistency proof (RFC 9162 §2.1.4) that the tree of `old` leaves is a prefix of the
/// tree of `new` leaves, from the hashes [`consistency_needs`] names. Empty when `old` is 0 or
/// equals `new` (nothing to prove).
pub fn consistency_proof(new: u64, old: u64, hashes: &Hashes) -> Result<Vec<Hash>, TreeError> {
    if old > new {
        return Err(TreeError::OutOfRange("sizes must satisfy 0 <= from <= to"));
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let needs = consistency_needs(new, old)?;
    tlog_tiles::prove_tree(new, old, hashes).map_err(|_| missing(&needs, hashes))
}

/// Whether `proof` shows leaf `index` with hash `leaf` in the tree of `size` leaves with `root`.
pub fn verify_inclusion(proof: &[Hash], size: u64, root: Hash, index: u64, leaf: Hash) -> bool {
    tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf).is_ok()
}

/// Whether `proof` shows the tree `(old, old_root)` to be a prefix of `(new, new_root)`.
pub fn verify_consistency(
    proof: &[Hash],
    new: u64,
    new_root: Hash,
    old: u64,
    old_root: Hash,
) -> bool {
    match (old, new) {
        (0, _) => proof.is_empty() && old_root == EMPTY_ROOT,
        (o, n) if o == n => proof.is_empty() && old_root == new_root,
        (o, n) if o > n => false,
        _ => tlog_tiles::check_tree(&proof.to_vec(), new, new_root, old, old_root).is_ok(),
    }
}

/// A whole tree in memory, for a verifier that holds every leaf (`vouch audit verify`).
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    hashes: Hashes,
    size: u64,
}

impl MemoryTree {
    pub fn push(&mut self, leaf: Hash) -> Result<(), TreeError> {
        let appended = append(self.size, &self.hashes, &[leaf])?;
        self.hashes.0.extend(appended.stored);
        self.size = appended.size;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, TreeError> {
        if size > self.size {
            return Err(TreeError::OutOfRange("the tree is smaller than that"));
        }
        root(size, &self.hashes)
    }

    pub fn inclusion_proof(&self, size: u64, index: u64) -> Result<Vec<Hash>, TreeError> {
        inclusion_proof(size, index, &self.hashes)
    }

    pub fn consistency_proof(&self, new: u64, old: u64) -> Result<Vec<Hash>, TreeError> {
        consistency_proof(new, old, &self.hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6962 reference tree of transparency-dev/merkle (`testonly/constants.go` and
    /// `testonly/reference_test.go`, from Google's certificate-transparency test data): eight leaves
    /// and the root of every prefix, with some of its proofs below. Not computed by this code or
    /// its crate.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn reference_tree() -> MemoryTree {
        let mut tree = MemoryTree::default();
        for leaf in LEAVES {
            tree.push(leaf_hash(&hex::decode(leaf).unwrap())).unwrap();
        }
        tree
    }

    fn hex_of(hash: Hash) -> String {
        hex::encode(hash.0)
    }

    #[test]
    fn roots_match_the_reference_vectors() {
        let tree = reference_tree();
        assert_eq!(
            hex_of(tree.root(0).unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        for (size, expected) in ROOTS.iter().enumerate() {
            assert_eq!(
                hex_of(tree.root(size as u64 + 1).unwrap()),
                *expected,
                "size {}",
                size + 1
            );
        }
    }

    #[test]
    fn proofs_match_the_reference_vectors() {
        let tree = reference_tree();
        let hexes = |proof: Vec<Hash>| proof.into_iter().map(hex_of).collect::<Vec<_>>();
        let inclusion: [(u64, u64, &[&str]); 4] = [
            (
                2,
                0,
                &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
            ),
            (
                3,
                2,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                5,
                1,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                8,
                5,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (size, index, want) in inclusion {
            assert_eq!(
                hexes(tree.inclusion_proof(size, index).unwrap()),
                want,
                "{index} in {size}"
            );
        }
        let consistency: [(u64, u64, &[&str]); 3] = [
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (old, new, want) in consistency {
            assert_eq!(
                hexes(tree.consistency_proof(new, old).unwrap()),
                want,
                "{old} -> {new}"
            );
        }
    }

    #[test]
    fn every_proof_verifies_and_a_wrong_one_does_not() {
        let tree = reference_tree();
        for size in 1..=8u64 {
            let root = tree.root(size).unwrap();
            for index in 0..size {
                let leaf = leaf_hash(&hex::decode(LEAVES[index as usize]).unwrap());
                let proof = tree.inclusion_proof(size, index).unwrap();
                assert!(verify_inclusion(&proof, size, root, index, leaf));
                assert!(!verify_inclusion(
                    &proof,
                    size,
                    root,
                    index,
                    leaf_hash(b"forged")
                ));
                if size > 1 {
                    assert!(!verify_inclusion(
                        &proof,
                        size,
                        root,
                        (index + 1) % size,
                        leaf
                    ));
                }
            }
            for old in 0..=size {
                let old_root = tree.root(old).unwrap();
                let proof = tree.consistency_proof(size, old).unwrap();
                assert!(
                    verify_consistency(&proof, size, root, old, old_root),
                    "{old} -> {size}"
                );
                if old > 0 && old < size {
                    assert!(!verify_consistency(
                        &proof,
                        size,
                        root,
                        old,
                        leaf_hash(b"fork")
                    ));
                }
            }
        }
    }

    #[test]
    fn a_store_needs_only_what_it_is_told() {
        // Append in uneven batches with only the frontier at hand, as the sealer does.
        let full = reference_tree();
        let leaves: Vec<Hash> = LEAVES
            .iter()
            .map(|l| leaf_hash(&hex::decode(l).unwrap()))
            .collect();
        let mut stored = Hashes::default();
        let mut size = 0;
        for batch in [&leaves[0..3], &leaves[3..4], &leaves[4..8]] {
            let front = Hashes::new(frontier(size).into_iter().map(|i| (i, stored.0[&i])));
            let appended = append(size, &front, batch).unwrap();
            stored.0.extend(appended.stored);
            size = appended.size;
            assert_eq!(appended.root, full.root(size).unwrap());
        }
        // Proofs from exactly the hashes named.
        let pick = |needs: Vec<u64>| Hashes::new(needs.into_iter().map(|i| (i, stored.0[&i])));
        assert_eq!(
            inclusion_proof(8, 5, &pick(inclusion_needs(8, 5).unwrap())).unwrap(),
            full.inclusion_proof(8, 5).unwrap()
        );
        assert_eq!(
            consistency_proof(8, 3, &pick(consistency_needs(8, 3).unwrap())).unwrap(),
            full.consistency_proof(8, 3).unwrap()
        );
        // A missing hash is an error, never a panic or a wrong answer.
        assert!(matches!(
            root(8, &Hashes::default()),
            Err(TreeError::MissingHash(_))
        ));
        assert!(inclusion_needs(3, 3).is_err());
        assert!(consistency_proof(3, 4, &stored).is_err());
    }
}
