//! Mappings read in the order they are written.
//!
//! Hosts are listed (and managers tried) in the order the inventory gives
//! them, so the readers must not let a map type sort them.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

/// A mapping that keeps its order (serde_json's map sorts its keys).
#[derive(Debug)]
pub(super) struct Ordered<K, T>(pub(super) Vec<(K, T)>);

impl<'de, K: Deserialize<'de>, T: Deserialize<'de>> Deserialize<'de> for Ordered<K, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<K, T>(PhantomData<(K, T)>);
        impl<'de, K: Deserialize<'de>, T: Deserialize<'de>> Visitor<'de> for V<K, T> {
            type Value = Ordered<K, T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = vec![];
                while let Some(e) = m.next_entry()? {
                    v.push(e);
                }
                Ok(Ordered(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Ordered(vec![]))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Ordered(vec![]))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}
