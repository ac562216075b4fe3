//! Storage keys and values.
//!
//! Key layout: `"mlskit" 0x00 FORMAT namespace 0x00 label 0x00 cbor(key)`, where
//! `FORMAT` is [`FORMAT_VERSION`] and namespace is `mls` (records OpenMLS asks
//! for, with OpenMLS's storage version in the label), `sdk` (our own index
//! records) or `chk` (chunks of large OpenMLS records, see `chunked`; their
//! last part is the record's full key and the chunk index, u64 BE).
//! Values are CBOR, which is self-describing as OpenMLS requires, except the
//! header of a chunked record (`chunked::MAGIC`).

use serde::{de::DeserializeOwned, Serialize};

use super::{extend_wiped, Value};
use crate::core::error::CoreError;

/// Version of the key layout and value encoding written by this SDK.
pub const FORMAT_VERSION: u8 = 1;

const PREFIX: &[u8] = b"mlskit\0";

/// Namespace of a stored record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// Records written by OpenMLS through the `StorageProvider`.
    Mls,
    /// Records owned by the SDK (identity, indexes).
    Sdk,
    /// Chunks of large OpenMLS records (`chunked`).
    Chunk,
}

impl Namespace {
    fn tag(self) -> &'static [u8] {
        match self {
            Namespace::Mls => b"mls",
            Namespace::Sdk => b"sdk",
            Namespace::Chunk => b"chk",
        }
    }
}

/// Builds a full storage key from a namespace, a label and an already encoded key.
pub fn key(namespace: Namespace, label: &str, encoded_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX.len() + 6 + label.len() + encoded_key.len());
    out.extend_from_slice(PREFIX);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(namespace.tag());
    out.push(0);
    out.extend_from_slice(label.as_bytes());
    out.push(0);
    out.extend_from_slice(encoded_key);
    out
}

/// Whether `key` is a key of `namespace` (in this format).
pub fn in_namespace(key: &[u8], namespace: Namespace) -> bool {
    key.strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix(&[FORMAT_VERSION]))
        .and_then(|r| r.strip_prefix(namespace.tag()))
        .is_some_and(|r| r.first() == Some(&0))
}

/// Whether `key` is a record of `namespace` whose label is `name` (in any of
/// OpenMLS's storage versions, `name@N`).
pub fn is_record(key: &[u8], namespace: Namespace, name: &str) -> bool {
    key.strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix(&[FORMAT_VERSION]))
        .and_then(|r| r.strip_prefix(namespace.tag()))
        .and_then(|r| r.strip_prefix(&[0]))
        .and_then(|r| r.strip_prefix(name.as_bytes()))
        .is_some_and(|r| r.first() == Some(&b'@'))
}

/// Human-readable label of a storage key, for error messages (never the key bytes).
pub fn describe_key(key: &[u8]) -> String {
    let rest = key
        .strip_prefix(PREFIX)
        .and_then(|r| r.get(1..))
        .unwrap_or(&[]);
    let mut parts = rest.split(|b| *b == 0);
    let ns = parts
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let label = parts
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    if label.is_empty() {
        "unrecognised key".to_string()
    } else {
        format!("{ns}/{label}")
    }
}

/// Encodes a value (or a key) as CBOR.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CoreError> {
    cbor4ii::serde::to_vec(Vec::new(), &value).map_err(|e| CoreError::Internal {
        reason: format!("encoding a storage value failed: {e}"),
    })
}

/// Encodes a value to be stored as CBOR, into a buffer that is wiped when
/// dropped; so are the smaller buffers it outgrew on the way (`Value`).
pub fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, CoreError> {
    struct Wiped(Value);
    impl cbor4ii::core::enc::Write for Wiped {
        type Error = std::convert::Infallible;
        fn push(&mut self, input: &[u8]) -> Result<(), Self::Error> {
            extend_wiped(&mut self.0, input);
            Ok(())
        }
    }
    let mut serializer =
        cbor4ii::serde::Serializer::new(Wiped(Value::new(Vec::with_capacity(256))));
    value
        .serialize(&mut serializer)
        .map_err(|e| CoreError::Internal {
            reason: format!("encoding a storage value failed: {e}"),
        })?;
    Ok(serializer.into_inner().0)
}

/// Decodes a stored value; a value that does not decode is `StorageCorrupt`.
pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, CoreError> {
    cbor4ii::serde::from_slice(bytes).map_err(|e| CoreError::StorageCorrupt {
        key: describe_key(key),
        reason: e.to_string(),
    })
}

/// Bytes stored as one CBOR byte string (serde writes a plain `Vec<u8>` as an
/// array of numbers: up to twice the size, and slower). Reads either form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `#[serde(with = "codec::as_bytes")]`: a `Vec<u8>` field stored as [`Bytes`].
pub mod as_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        super::Bytes::deserialize(d).map(|b| b.0)
    }
}

/// `#[serde(with = "codec::as_opt_bytes")]`: an `Option<Vec<u8>>` field stored
/// as an optional [`Bytes`].
pub mod as_opt_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    struct Borrowed<'a>(&'a [u8]);

    impl Serialize for Borrowed<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => s.serialize_some(&Borrowed(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<super::Bytes>::deserialize(d).map(|o| o.map(|b| b.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_one_byte_string_and_arrays_still_read() {
        let value = Bytes(vec![0, 1, 200, 255]);
        let encoded = encode(&value).unwrap();
        // Major type 2 (byte string), length 4, then the bytes themselves.
        assert_eq!(encoded, vec![0x44, 0, 1, 200, 255]);
        assert_eq!(decode::<Bytes>(b"k", &encoded).unwrap(), value);
        let as_array = encode(&vec![0u8, 1, 200, 255]).unwrap();
        assert_eq!(decode::<Bytes>(b"k", &as_array).unwrap(), value);
        assert!(matches!(
            decode::<Bytes>(b"k", &[0x44, 1]),
            Err(CoreError::StorageCorrupt { .. })
        ));
    }
}
