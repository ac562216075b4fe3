//! Bounds on outside bytes, checked before OpenMLS decodes them.
//!
//! TLS decoding builds one in-memory item per vector element, and some
//! elements are far smaller on the wire than in memory: a blank tree node is
//! one byte and about 16 in memory, an empty extension or HPKE ciphertext a
//! few bytes and 50 or more. Unbounded, a 4 MiB GroupInfo of blank nodes cost
//! 80 MiB. So before decoding, [`InputLimits`] checks the length, and walks
//! the structure of every message that can be decoded before any key or
//! signature is checked (PublicMessage, Welcome, GroupInfo, KeyPackage,
//! ratchet tree) counting its structured items (tree nodes, proposals,
//! extensions, update-path nodes, HPKE ciphertexts, external senders) against
//! a budget that follows from the byte limit. Ciphertexts are opaque here:
//! what a PrivateMessage or a Welcome decrypts to is bounded by the length
//! alone.

use crate::core::error::CoreError;

/// Default largest input: 4 MiB. A Welcome for a 10,000-member group is
/// about 1.9 MB (3.4 MB when it invites all of them at once), its ratchet
/// tree about 1.9 MB (measured: 185 bytes per member with short identities).
pub const DEFAULT_MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;

/// Smallest limit an app may set: enough for any group of a few members.
pub const MIN_MAX_INPUT_BYTES: usize = 64 * 1024;

/// One structured item may be counted for every this many bytes of the
/// limit: 131,072 items at 4 MiB. A leaf node counts as [`LEAF_NODE_ITEMS`],
/// other items as one; measured, an item then decodes to at most about 50
/// bytes. An honest 10,000-member tree counts about 90,000 (10,000 leaves,
/// 10,000 parent nodes), so the default admits trees of about 14,000 members.
const LIMIT_BYTES_PER_ITEM: usize = 32;

/// Items a leaf node (in a tree, key package, Update or path) counts as.
const LEAF_NODE_ITEMS: usize = 8;

/// How big an outside input may be, and how many structured items it may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputLimits {
    max_bytes: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_INPUT_BYTES,
        }
    }
}

/// What kind of bytes are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// An `MLSMessage` of any wire format.
    Message,
    /// An exported ratchet tree.
    RatchetTree,
    /// A key package, bare or wrapped in an `MLSMessage`.
    KeyPackage,
}

impl InputLimits {
    /// Limits for at most `max_bytes` per input (at least [`MIN_MAX_INPUT_BYTES`]).
    pub fn new(max_bytes: usize) -> Result<Self, CoreError> {
        if max_bytes < MIN_MAX_INPUT_BYTES {
            return Err(CoreError::validation(format!(
                "the input limit must be at least {MIN_MAX_INPUT_BYTES} bytes"
            )));
        }
        Ok(Self { max_bytes })
    }

    /// The largest input accepted, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The most structured items one input may hold.
    pub fn max_items(&self) -> usize {
        self.max_bytes / LIMIT_BYTES_PER_ITEM
    }

    /// Checks `bytes` as `shape`; `MalformedInput` if too large, too many
    /// items, or not that structure.
    pub fn check(&self, bytes: &[u8], shape: Shape) -> Result<(), CoreError> {
        if bytes.is_empty() {
            return Err(CoreError::malformed("empty input"));
        }
        if bytes.len() > self.max_bytes {
            return Err(CoreError::malformed(format!(
                "input of {} bytes is larger than the limit of {} bytes",
                bytes.len(),
                self.max_bytes
            )));
        }
        let max_items = self.max_items();
        let scan = |walk| Scan::run(bytes, max_items, walk);
        let outcome = match shape {
            Shape::Message => scan(Scan::mls_message),
            Shape::RatchetTree => scan(Scan::ratchet_tree),
            // Decoded wrapped if that parses, else bare: both readings must
            // stay within the budget, and one must parse.
            Shape::KeyPackage => match (scan(Scan::mls_message), scan(Scan::key_package)) {
                (Err(Stop::TooManyItems), _) | (_, Err(Stop::TooManyItems)) => {
                    Err(Stop::TooManyItems)
                }
                (Ok(()), _) | (_, Ok(())) => Ok(()),
                (Err(e), _) => Err(e),
            },
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(Stop::TooManyItems) => Err(CoreError::malformed(format!(
                "input holds more than {} structured items (tree nodes, proposals, extensions, ...)",
                self.max_items()
            ))),
            Err(Stop::Malformed(what)) => Err(CoreError::malformed(what)),
        }
    }
}

enum Stop {
    TooManyItems,
    Malformed(&'static str),
}

type Step = Result<(), Stop>;

/// A cursor over TLS-encoded bytes (RFC 9420 §2.1) that skips fields and
/// counts items without building anything.
struct Scan<'a> {
    rest: &'a [u8],
    items: usize,
    max_items: usize,
}

const TRUNCATED: Stop = Stop::Malformed("truncated or inconsistent lengths");

impl<'a> Scan<'a> {
    /// Walks all of `bytes`: a walk that leaves bytes over is malformed (so
    /// that a prefix that happens to parse cannot hide the rest).
    fn run(bytes: &'a [u8], max_items: usize, walk: fn(&mut Scan<'a>) -> Step) -> Step {
        let mut scan = Scan {
            rest: bytes,
            items: 0,
            max_items,
        };
        walk(&mut scan)?;
        if scan.rest.is_empty() {
            Ok(())
        } else {
            Err(Stop::Malformed("trailing bytes after the structure"))
        }
    }

    /// Counts `n` items against the budget.
    fn count(&mut self, n: usize) -> Step {
        self.items += n;
        if self.items > self.max_items {
            return Err(Stop::TooManyItems);
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        if self.rest.len() < n {
            return Err(TRUNCATED);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn uint(&mut self, n: usize) -> Result<u64, Stop> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A variable-length vector's length prefix (RFC 9420 §2.1.2).
    fn length(&mut self) -> Result<usize, Stop> {
        let first = *self.take(1)?.first().ok_or(TRUNCATED)?;
        let (extra, value) = match first >> 6 {
            0 => (0, u64::from(first & 0x3f)),
            1 => (1, u64::from(first & 0x3f)),
            2 => (3, u64::from(first & 0x3f)),
            _ => return Err(Stop::Malformed("invalid length prefix")),
        };
        let rest = self.uint(extra)?;
        usize::try_from((value << (8 * extra)) | rest).map_err(|_| TRUNCATED)
    }

    /// `opaque data<V>`, skipped.
    fn opaque(&mut self) -> Step {
        let n = self.length()?;
        self.take(n).map(|_| ())
    }

    /// `T items<V>`: every element is one counted item.
    fn items(&mut self, each: fn(&mut Scan<'a>) -> Step) -> Step {
        let n = self.length()?;
        let mut inner = Scan {
            rest: self.take(n)?,
            items: self.items,
            max_items: self.max_items,
        };
        while !inner.rest.is_empty() {
            inner.count(1)?;
            each(&mut inner)?;
        }
        self.items = inner.items;
        Ok(())
    }

    fn mls_message(&mut self) -> Step {
        self.uint(2)?; // version
        match self.uint(2)? {
            1 => self.public_message(),
            2 => {
                // PrivateMessage: opaque until decrypted.
                self.opaque()?; // group_id
                self.uint(9)?; // epoch, content_type
                self.opaque()?; // authenticated_data
                self.opaque()?; // encrypted_sender_data
                self.opaque() // ciphertext
            }
            3 => self.welcome(),
            4 => self.group_info(),
            5 => self.key_package(),
            _ => Err(Stop::Malformed("unknown wire format")),
        }
    }

    fn public_message(&mut self) -> Step {
        self.opaque()?; // group_id
        self.uint(8)?; // epoch
        let sender = self.uint(1)?;
        match sender {
            1 | 2 => self.uint(4).map(|_| ())?, // member / external sender index
            3 | 4 => {}
            _ => return Err(Stop::Malformed("unknown sender type")),
        }
        self.opaque()?; // authenticated_data
        let content_type = self.uint(1)?;
        match content_type {
            1 => self.opaque()?,
            2 => self.proposal()?,
            3 => self.commit()?,
            _ => return Err(Stop::Malformed("unknown content type")),
        }
        self.opaque()?; // signature
        if content_type == 3 {
            self.opaque()?; // confirmation_tag
        }
        if sender == 1 {
            self.opaque()?; // membership_tag
        }
        Ok(())
    }

    fn commit(&mut self) -> Step {
        self.items(|s| match s.uint(1)? {
            1 => s.proposal(),
            2 => s.opaque(), // proposal reference
            _ => Err(Stop::Malformed("unknown proposal-or-ref type")),
        })?;
        match self.uint(1)? {
            0 => Ok(()),
            1 => {
                self.leaf_node()?;
                self.items(|s| {
                    s.opaque()?; // encryption_key
                    s.items(Scan::hpke_ciphertext)
                })
            }
            _ => Err(Stop::Malformed("invalid optional update path")),
        }
    }

    fn proposal(&mut self) -> Step {
        match self.uint(2)? {
            1 => self.key_package(),
            2 => self.leaf_node(),
            3 => self.uint(4).map(|_| ()),
            4 => self.pre_shared_key_id(),
            5 => {
                // ReInit
                self.opaque()?;
                self.uint(4)?; // version, cipher_suite
                self.extensions()
            }
            6 => self.opaque(), // ExternalInit kem_output
            7 => self.extensions(),
            0x000a => Ok(()), // SelfRemove has no body
            // OpenMLS reads every other type as an opaque payload.
            _ => self.opaque(),
        }
    }

    fn pre_shared_key_id(&mut self) -> Step {
        match self.uint(1)? {
            1 => self.opaque()?,
            2 => {
                self.uint(1)?; // usage
                self.opaque()?; // group id
                self.uint(8)?; // epoch
            }
            _ => return Err(Stop::Malformed("unknown PSK type")),
        }
        self.opaque() // nonce
    }

    fn hpke_ciphertext(&mut self) -> Step {
        self.opaque()?;
        self.opaque()
    }

    fn welcome(&mut self) -> Step {
        self.uint(2)?; // cipher_suite
        self.items(|s| {
            s.opaque()?; // new_member
            s.hpke_ciphertext()
        })?;
        self.opaque() // encrypted_group_info
    }

    fn group_info(&mut self) -> Step {
        // GroupContext
        self.uint(4)?; // version, cipher_suite
        self.opaque()?; // group_id
        self.uint(8)?; // epoch
        self.opaque()?; // tree_hash
        self.opaque()?; // confirmed_transcript_hash
        self.extensions()?;
        // GroupInfo
        self.group_info_extensions()?;
        self.opaque()?; // confirmation_tag
        self.uint(4)?; // signer
        self.opaque() // signature
    }

    fn key_package(&mut self) -> Step {
        self.uint(4)?; // version, cipher_suite
        self.opaque()?; // init_key
        self.leaf_node()?;
        self.extensions()?;
        self.opaque() // signature
    }

    fn leaf_node(&mut self) -> Step {
        // A leaf decodes to about 300 bytes however small it is on the wire:
        // it counts as LEAF_NODE_ITEMS items.
        self.count(LEAF_NODE_ITEMS)?;
        self.opaque()?; // encryption_key
        self.opaque()?; // signature_key
        self.uint(2)?; // credential_type
        self.opaque()?; // credential content
        for _ in 0..5 {
            self.opaque()?; // capabilities: versions .. credentials
        }
        match self.uint(1)? {
            1 => self.uint(16).map(|_| ())?, // lifetime
            2 => {}
            3 => self.opaque()?, // parent_hash
            _ => return Err(Stop::Malformed("unknown leaf node source")),
        }
        self.extensions()?;
        self.opaque() // signature
    }

    fn parent_node(&mut self) -> Step {
        self.opaque()?; // encryption_key
        self.opaque()?; // parent_hash
        self.opaque() // unmerged_leaves
    }

    /// A GroupInfo's own extensions: the only place a ratchet tree may be.
    fn group_info_extensions(&mut self) -> Step {
        self.items(|s| s.extension(true))
    }

    /// Any other extension list (leaf node, key package, group context): a
    /// ratchet tree there is refused before decoding (OpenMLS refuses it
    /// too, but only after decoding it; walking it could recurse without end).
    fn extensions(&mut self) -> Step {
        self.items(|s| s.extension(false))
    }

    /// One extension; the data of ratchet-tree (2, where `tree_allowed`) and
    /// external-senders (5) extensions is walked too, as OpenMLS decodes them.
    fn extension(&mut self, tree_allowed: bool) -> Step {
        let extension_type = self.uint(2)?;
        let n = self.length()?;
        let mut data = Scan {
            rest: self.take(n)?,
            items: self.items,
            max_items: self.max_items,
        };
        match extension_type {
            2 if tree_allowed => data.ratchet_tree()?,
            2 => return Err(Stop::Malformed("a ratchet tree outside a GroupInfo")),
            5 => data.items(|e| {
                e.opaque()?; // signature_key
                e.uint(2)?;
                e.opaque() // credential
            })?,
            _ => {}
        }
        self.items = data.items;
        Ok(())
    }

    fn ratchet_tree(&mut self) -> Step {
        self.items(|s| match s.uint(1)? {
            0 => Ok(()),
            1 => match s.uint(1)? {
                1 => s.leaf_node(),
                2 => s.parent_node(),
                _ => Err(Stop::Malformed("unknown node type")),
            },
            _ => Err(Stop::Malformed("invalid optional node")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank_tree(nodes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let len = nodes as u32;
        out.extend_from_slice(&(0x8000_0000u32 | len).to_be_bytes());
        out.resize(4 + nodes, 0);
        out
    }

    #[test]
    fn a_tree_of_blank_nodes_is_refused_past_the_item_budget() {
        let limits = InputLimits::default();
        let max = limits.max_items();
        assert!(limits.check(&blank_tree(max), Shape::RatchetTree).is_ok());
        let e = limits
            .check(&blank_tree(max + 1), Shape::RatchetTree)
            .unwrap_err();
        assert!(e.to_string().contains("structured items"), "{e}");
    }

    #[test]
    fn length_and_truncation_are_refused() {
        let limits = InputLimits::new(MIN_MAX_INPUT_BYTES).unwrap();
        assert!(limits.check(&[], Shape::Message).is_err());
        assert!(limits
            .check(&vec![0; MIN_MAX_INPUT_BYTES + 1], Shape::RatchetTree)
            .is_err());
        let mut tree = blank_tree(10);
        tree.pop();
        assert!(limits.check(&tree, Shape::RatchetTree).is_err());
        assert!(InputLimits::new(MIN_MAX_INPUT_BYTES - 1).is_err());
    }
}
