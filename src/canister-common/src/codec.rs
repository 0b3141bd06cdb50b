//! Storing serde values in stable structures.

use ic_stable_structures::Storable;
use ic_stable_structures::storable::Bound;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;

/// A value stored in stable memory as CBOR.
///
/// Encoded with ciborium, which stores integers beyond 64 bits as CBOR
/// bignums: token amounts are `u128`, and an 18-decimal token passes
/// `u64::MAX` at about 18.4 whole tokens (serde_cbor refuses such values).
///
/// CBOR keeps field names, so records may gain optional fields without a
/// migration. Decoding a value this canister wrote itself cannot fail unless
/// stable memory is corrupt, in which case trapping is the only safe answer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cbor<T>(pub T);

impl<T: Serialize + DeserializeOwned> Storable for Cbor<T> {
    const BOUND: Bound = Bound::Unbounded;

    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        self.clone_bytes()
    }

    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        match ciborium::from_reader(bytes.as_ref()) {
            Ok(value) => Cbor(value),
            Err(e) => panic!("BUG: stable memory holds an undecodable value: {e}"),
        }
    }
}

impl<T: Serialize> Cbor<T> {
    fn clone_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        match ciborium::into_writer(&self.0, &mut bytes) {
            Ok(()) => bytes,
            Err(e) => panic!("BUG: value cannot be encoded as CBOR: {e}"),
        }
    }
}

impl<T: Clone> Cbor<Option<T>> {
    /// The configuration `canister`'s `init` stored. Every entry point runs
    /// after `init`, so a missing one is a bug.
    pub fn installed(&self, canister: &str) -> T {
        match &self.0 {
            Some(c) => c.clone(),
            None => panic!("BUG: {canister} used before init"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn amounts_beyond_64_bits_round_trip() {
        for v in [
            0u128,
            u128::from(u64::MAX),
            u128::from(u64::MAX) + 1,
            u128::MAX,
        ] {
            let bytes = Cbor(v).into_bytes();
            assert_eq!(Cbor::<u128>::from_bytes(Cow::Owned(bytes)).0, v);
        }
    }

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    struct Old {
        a: u64,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    struct New {
        a: u64,
        #[serde(default)]
        b: Option<String>,
    }

    #[test]
    fn round_trips_and_evolves() {
        let bytes = Cbor(Old { a: 7 }).into_bytes();
        let new: Cbor<New> = Cbor::from_bytes(Cow::Owned(bytes));
        assert_eq!(new.0, New { a: 7, b: None });
        let again: Cbor<New> = Cbor::from_bytes(new.to_bytes());
        assert_eq!(again.0, new.0);
    }
}
