//! The part of the IC state tree a certificate carries, and certificates.
//!
//! Each certificate is built for one response: a tree holding `/time` and the
//! requested paths only, signed with the root key. It is not a pruned view of
//! one global tree (the root hash differs per response), which clients cannot
//! tell apart: they verify the signature over whatever tree they receive, and
//! a path missing from it reads as absent.

use std::collections::BTreeMap;

use ic_certification::{Certificate, HashTree, empty, fork, labeled, leaf};
use serde::Serialize;

use crate::keys::NodeKeys;

/// A labelled tree of leaves, ordered by label as the spec requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tree {
    /// A value.
    Leaf(Vec<u8>),
    /// Labelled children.
    Node(BTreeMap<Vec<u8>, Tree>),
}

impl Default for Tree {
    fn default() -> Self {
        Tree::Node(BTreeMap::new())
    }
}

impl Tree {
    /// Puts `value` at `path`, creating the nodes on the way (a leaf on the
    /// way is replaced by a node).
    pub fn insert(&mut self, path: &[&[u8]], value: Vec<u8>) {
        let Some((last, init)) = path.split_last() else {
            *self = Tree::Leaf(value);
            return;
        };
        let mut node = self;
        for label in init {
            node = node.child_mut(label);
        }
        node.children_mut().insert(last.to_vec(), Tree::Leaf(value));
    }

    /// Puts a whole subtree at `path`.
    pub fn insert_tree(&mut self, path: &[&[u8]], tree: Tree) {
        let Some((last, init)) = path.split_last() else {
            *self = tree;
            return;
        };
        let mut node = self;
        for label in init {
            node = node.child_mut(label);
        }
        node.children_mut().insert(last.to_vec(), tree);
    }

    fn children_mut(&mut self) -> &mut BTreeMap<Vec<u8>, Tree> {
        if let Tree::Leaf(_) = self {
            *self = Tree::default();
        }
        match self {
            Tree::Node(children) => children,
            Tree::Leaf(_) => unreachable!(),
        }
    }

    fn child_mut(&mut self, label: &[u8]) -> &mut Tree {
        self.children_mut().entry(label.to_vec()).or_default()
    }

    /// The subtree at `path`, if there is one.
    pub fn get(&self, path: &[&[u8]]) -> Option<&Tree> {
        let mut node = self;
        for label in path {
            match node {
                Tree::Node(children) => node = children.get(*label)?,
                Tree::Leaf(_) => return None,
            }
        }
        Some(node)
    }

    /// The hash tree of this tree: labelled nodes in label order, combined
    /// by a balanced tree of forks.
    pub fn to_hash_tree(&self) -> HashTree {
        match self {
            Tree::Leaf(value) => leaf(value.clone()),
            Tree::Node(children) => {
                let nodes: Vec<HashTree> = children
                    .iter()
                    .map(|(label, child)| labeled(label.clone(), child.to_hash_tree()))
                    .collect();
                balanced_forks(nodes)
            }
        }
    }
}

fn balanced_forks(mut nodes: Vec<HashTree>) -> HashTree {
    match nodes.len() {
        0 => empty(),
        1 => nodes.pop().expect("one node"),
        n => {
            let right = nodes.split_off(n / 2);
            fork(balanced_forks(nodes), balanced_forks(right))
        }
    }
}

/// Unsigned LEB128, the encoding of natural numbers in the state tree.
pub fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// CBOR with the self-describing tag (55799) in front, as the IC sends it.
pub fn cbor_self_describing<T: Serialize>(value: &T) -> Vec<u8> {
    let mut ser = serde_cbor::Serializer::new(Vec::new());
    ser.self_describe().expect("writing to a Vec");
    value.serialize(&mut ser).expect("serializing to CBOR");
    ser.into_inner()
}

/// Signs `tree` (which should hold `/time`) with the root key and returns the
/// CBOR-encoded certificate.
pub fn certify(tree: &Tree, keys: &NodeKeys) -> Vec<u8> {
    let tree = tree.to_hash_tree();
    let signature = keys.sign_state_root(&tree.digest());
    cbor_self_describing(&Certificate {
        tree,
        signature,
        delegation: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_certification::LookupResult;

    #[test]
    fn lookups_find_inserted_paths_and_miss_others() {
        let mut tree = Tree::default();
        tree.insert(&[b"time"], leb128(1_700_000_000_000_000_000));
        tree.insert(&[b"request_status", b"abc", b"status"], b"replied".to_vec());
        tree.insert(&[b"request_status", b"abc", b"reply"], b"DIDL".to_vec());
        for i in 0..7u8 {
            tree.insert(&[b"canister", &[i], b"module_hash"], vec![i; 32]);
        }
        let hash_tree = tree.to_hash_tree();
        assert_eq!(
            hash_tree.lookup_path([b"request_status".as_ref(), b"abc", b"status"]),
            LookupResult::Found(b"replied")
        );
        assert_eq!(
            hash_tree.lookup_path([b"canister".as_ref(), &[5], b"module_hash"]),
            LookupResult::Found(&[5; 32])
        );
        assert_eq!(
            hash_tree.lookup_path([b"request_status".as_ref(), b"abd", b"status"]),
            LookupResult::Absent
        );
        assert_eq!(
            hash_tree.lookup_path([b"canister".as_ref(), &[9], b"module_hash"]),
            LookupResult::Absent
        );
    }

    #[test]
    fn leb128_matches_the_spec_examples() {
        assert_eq!(leb128(0), [0]);
        assert_eq!(leb128(127), [127]);
        assert_eq!(leb128(624485), [0xe5, 0x8e, 0x26]);
    }
}
