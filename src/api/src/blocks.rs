//! The event logs as ICRC-3 blocks: how an event becomes an ICRC-3 `Value`,
//! how blocks chain, and the tip hash tree a canister certifies.
//!
//! Each canister's event log is a hash chain. Block `i` is the ICRC-3 Map
//!
//! ```text
//! { phash: Blob (the hash of block i-1; absent in block 0),
//!   ts:    Nat  (IC time of the event, ns),
//!   btype: Text ("market.registry", "market.escrow" or "market.matcher"),
//!   ev:    the event, as [`to_value`] maps it }
//! ```
//!
//! and its hash is the ICRC-3 representation-independent hash of that Map
//! ([`block_hash`]). The canister certifies the root of the [`tip_tree`]
//! (`last_block_index`, `last_block_hash`), so anyone holding the IC's root
//! key can check a tip certificate and then every block back from the tip.
//!
//! Both the canisters (which build and hash the blocks) and clients (which
//! check them) use this module, so the two can't disagree on the encoding.

use candid::types::Label;
use candid::types::value::{IDLField, IDLValue, VariantValue};
use candid::{CandidType, Deserialize, Int, Nat, Principal};
use ic_certification::{HashTree, fork, label, leaf};
use icrc_ledger_types::icrc::generic_value::ICRC3Map;
use serde::Serialize;
use serde_bytes::ByteBuf;

pub use icrc_ledger_types::icrc::generic_value::{Hash, ICRC3Value};
pub use icrc_ledger_types::icrc3::archive::QueryArchiveFn;
pub use icrc_ledger_types::icrc3::archive::{GetArchivesArgs, ICRC3ArchiveInfo};
pub use icrc_ledger_types::icrc3::blocks::{
    ArchivedBlocks, BlockWithId, GetBlocksRequest, GetBlocksResult, ICRC3DataCertificate,
    SupportedBlockType,
};

/// Most blocks one `icrc3_get_blocks` query returns, whatever it asks for.
pub const MAX_BLOCKS_PER_QUERY: u64 = 100;

/// Most ranges one `icrc3_get_blocks` query may ask for; further ranges
/// are ignored.
pub const MAX_RANGES_PER_QUERY: usize = 32;

/// The tip tree's label of the last block's index (LEB128 of the index).
pub const LAST_BLOCK_INDEX: &str = "last_block_index";

/// The tip tree's label of the last block's hash (32 bytes).
pub const LAST_BLOCK_HASH: &str = "last_block_hash";

/// Where the block types of the event logs are described (this module).
pub const BLOCK_TYPES_URL: &str =
    "https://github.com/icp-compute-market/market/blob/main/src/api/src/blocks.rs";

/// Most blocks one `append_blocks` call may carry to an archive.
pub const MAX_APPEND_BLOCKS: usize = 100;

/// Most bytes of blocks (as [`approx_size`] counts them) one
/// `append_blocks` call carries, well below the IC's 2 MB limit on a
/// call's argument; a larger block goes alone.
pub const MAX_APPEND_BYTES: usize = 1024 * 1024;

/// About how many bytes a value takes encoded: its blobs' and texts'
/// lengths and map keys, and 16 for each number or container.
pub fn approx_size(value: &ICRC3Value) -> usize {
    match value {
        ICRC3Value::Blob(b) => b.len() + 16,
        ICRC3Value::Text(t) => t.len() + 16,
        ICRC3Value::Nat(_) | ICRC3Value::Int(_) => 16,
        ICRC3Value::Array(items) => items.iter().map(approx_size).sum::<usize>() + 16,
        ICRC3Value::Map(map) => {
            map.iter()
                .map(|(k, v)| k.len() + approx_size(v))
                .sum::<usize>()
                + 16
        }
    }
}

/// Most archives one canister's log lists: a new archive is named by its
/// controllers when the last one is full.
pub const MAX_ARCHIVES: usize = 64;

/// The init argument of an archive canister.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ArchiveInit {
    /// The canister whose old blocks this archive keeps: the only caller of
    /// `append_blocks`.
    pub owner: Principal,
    /// Most blocks the archive keeps; it refuses more. [`DEFAULT_ARCHIVE_CAPACITY`]
    /// when absent.
    pub capacity_blocks: Option<u64>,
}

/// Blocks an archive keeps when its init argument names no capacity.
pub const DEFAULT_ARCHIVE_CAPACITY: u64 = 10_000_000;

/// The argument of an archive's `append_blocks`: consecutive blocks of the
/// owner's chain from index `start`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AppendBlocksArgs {
    /// The index of the first block.
    pub start: u64,
    /// The blocks, at most [`MAX_APPEND_BLOCKS`].
    pub blocks: Vec<ICRC3Value>,
}

/// Why an archive refused `append_blocks`. Nothing was stored.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendBlocksError {
    /// Only the owner named at install may append.
    #[error("only the owner may append blocks")]
    NotOwner,
    /// More than [`MAX_APPEND_BLOCKS`] blocks in one call.
    #[error("at most {max} blocks per call")]
    TooManyBlocks {
        /// The most allowed.
        max: u64,
    },
    /// The blocks do not continue the archive: the next block it takes is
    /// `expected` (or, for an empty archive, any index).
    #[error("the archive takes block {expected} next, not {start}")]
    Gap {
        /// The first block sent.
        start: u64,
        /// The archive's next index.
        expected: u64,
    },
    /// A block the archive already holds differs from the one sent, or a
    /// new block's `phash` is not the hash of the block before it.
    #[error("block {index} does not match the archived chain")]
    Mismatch {
        /// The block.
        index: u64,
    },
    /// The archive holds its capacity; the owner needs a new archive.
    #[error("the archive is full at {capacity_blocks} blocks")]
    Full {
        /// The archive's capacity.
        capacity_blocks: u64,
    },
}

/// How a canister archives its event log: set by its controllers with
/// `set_log_archiving`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct LogArchiving {
    /// The archive canister that takes the oldest blocks from now on (its
    /// `owner` must be this canister). `None` keeps the current one.
    pub archive: Option<Principal>,
    /// Blocks kept in the canister: once more are, the oldest move to the
    /// archive. `None` keeps the current value (at first
    /// [`DEFAULT_MAX_LOCAL_BLOCKS`]).
    pub max_local_blocks: Option<u64>,
}

/// Blocks a canister keeps locally until its controllers set otherwise.
pub const DEFAULT_MAX_LOCAL_BLOCKS: u64 = 50_000;

/// Fewest blocks a canister may be set to keep locally.
pub const MIN_MAX_LOCAL_BLOCKS: u64 = 1;

/// Where a canister's log archiving stands (`get_log_archiving`).
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct LogArchivingStatus {
    /// The archive blocks move to, if one is set.
    pub archive: Option<Principal>,
    /// Blocks kept locally before the oldest move.
    pub max_local_blocks: u64,
    /// Blocks in the log, archived ones included.
    pub log_length: u64,
    /// The index of the oldest block still held locally (`log_length`
    /// when none is).
    pub first_local_index: u64,
    /// Why the last move to the archive failed, if it did.
    pub last_error: Option<String>,
}

/// Why `set_log_archiving` was refused.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogArchivingError {
    /// The caller is not a controller (or the SNS governance canister).
    #[error("only the controllers may change the log's archiving")]
    NotAuthorized,
    /// A value is out of range.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
}

/// Where an archive stands (`archive_status`).
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ArchiveStatus {
    /// The canister it archives for.
    pub owner: Principal,
    /// Most blocks it keeps.
    pub capacity_blocks: u64,
    /// The index of its first block (none while empty).
    pub first_index: Option<u64>,
    /// Blocks held.
    pub blocks: u64,
}

/// An event type kept in a certified log, with the block type its blocks
/// carry.
pub trait BlockEvent: CandidType {
    /// The `btype` of this log's blocks.
    const BLOCK_TYPE: &'static str;
}

impl BlockEvent for crate::registry::RegistryEvent {
    const BLOCK_TYPE: &'static str = "market.registry";
}

impl BlockEvent for crate::escrow::EscrowEvent {
    const BLOCK_TYPE: &'static str = "market.escrow";
}

impl BlockEvent for crate::matcher::MatcherEvent {
    const BLOCK_TYPE: &'static str = "market.matcher";
}

/// Why a value could not be mapped to an ICRC-3 Value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the value can't be encoded as Candid: {0}")]
pub struct EncodeError(pub String);

/// The ICRC-3 Value of a Candid value, by its Candid type:
///
/// | Candid                      | ICRC-3 Value                                   |
/// |-----------------------------|------------------------------------------------|
/// | `nat`, `nat8` .. `nat64`    | `Nat`                                          |
/// | `int`, `int8` .. `int64`    | `Int`                                          |
/// | `bool`                      | `Nat` 1 (true) or 0 (false)                    |
/// | `text`                      | `Text`                                         |
/// | `blob` (`vec nat8`)         | `Blob`                                         |
/// | `principal`, `service`      | `Blob` of the principal's bytes                |
/// | `vec T`                     | `Array`                                        |
/// | `record` with field names   | `Map` by field name (ids without a name: their decimal number) |
/// | tuple `record { T; U }`     | `Array` in field order                         |
/// | `opt T` as a record field   | the field's value, or no field for `null`      |
/// | `opt T` elsewhere           | `Array` of zero or one value                   |
/// | `variant`                   | `Map` of one entry, tag to payload             |
/// | `null`, `reserved`          | empty `Array`                                  |
/// | `func`                      | `Array` of the principal's `Blob` and method `Text` |
/// | `float32`, `float64`        | `Text` of the number (the market has none)     |
///
/// The value is encoded with its Rust type's Candid type and decoded to an
/// `IDLValue` against that type, so names come from the type, not the
/// wire. The mapping is injective for a fixed Candid type; a client checks
/// an event it decoded by mapping it again and comparing.
pub fn to_value<T: CandidType>(value: &T) -> Result<ICRC3Value, EncodeError> {
    let idl = IDLValue::try_from_candid_type(value).map_err(|e| EncodeError(e.to_string()))?;
    Ok(idl_to_value(idl))
}

/// [`to_value`] for a Candid value already decoded against its type.
pub fn idl_to_value(value: IDLValue) -> ICRC3Value {
    match value {
        IDLValue::Bool(b) => ICRC3Value::Nat(Nat::from(u8::from(b))),
        IDLValue::Null | IDLValue::Reserved | IDLValue::None => ICRC3Value::Array(vec![]),
        IDLValue::Text(t) | IDLValue::Number(t) => ICRC3Value::Text(t),
        IDLValue::Float64(f) => ICRC3Value::Text(f.to_string()),
        IDLValue::Float32(f) => ICRC3Value::Text(f.to_string()),
        IDLValue::Opt(v) => ICRC3Value::Array(vec![idl_to_value(*v)]),
        IDLValue::Vec(items) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|v| match v {
                    IDLValue::Nat8(b) => Some(*b),
                    _ => None,
                })
                .collect();
            match bytes {
                Some(bytes) if !bytes.is_empty() => ICRC3Value::Blob(ByteBuf::from(bytes)),
                _ => ICRC3Value::Array(items.into_iter().map(idl_to_value).collect()),
            }
        }
        IDLValue::Blob(b) => ICRC3Value::Blob(ByteBuf::from(b)),
        IDLValue::Record(fields) => record_value(fields),
        IDLValue::Variant(VariantValue(field, _)) => {
            let IDLField { id, val } = *field;
            ICRC3Value::Map(ICRC3Map::from([(label_key(&id), idl_to_value(val))]))
        }
        IDLValue::Principal(p) | IDLValue::Service(p) => {
            ICRC3Value::Blob(ByteBuf::from(p.as_slice().to_vec()))
        }
        IDLValue::Func(p, method) => ICRC3Value::Array(vec![
            ICRC3Value::Blob(ByteBuf::from(p.as_slice().to_vec())),
            ICRC3Value::Text(method),
        ]),
        IDLValue::Nat(n) => ICRC3Value::Nat(n),
        IDLValue::Nat8(n) => ICRC3Value::Nat(Nat::from(n)),
        IDLValue::Nat16(n) => ICRC3Value::Nat(Nat::from(n)),
        IDLValue::Nat32(n) => ICRC3Value::Nat(Nat::from(n)),
        IDLValue::Nat64(n) => ICRC3Value::Nat(Nat::from(n)),
        IDLValue::Int(n) => ICRC3Value::Int(n),
        IDLValue::Int8(n) => ICRC3Value::Int(Int::from(n)),
        IDLValue::Int16(n) => ICRC3Value::Int(Int::from(n)),
        IDLValue::Int32(n) => ICRC3Value::Int(Int::from(n)),
        IDLValue::Int64(n) => ICRC3Value::Int(Int::from(n)),
    }
}

fn record_value(fields: Vec<IDLField>) -> ICRC3Value {
    // A tuple's fields are numbered 0, 1, ... without names.
    let is_tuple = !fields.is_empty()
        && fields.iter().enumerate().all(|(i, f)| match f.id {
            Label::Id(n) | Label::Unnamed(n) => usize::try_from(n).is_ok_and(|n| n == i),
            Label::Named(_) => false,
        });
    if is_tuple {
        return ICRC3Value::Array(fields.into_iter().map(|f| idl_to_value(f.val)).collect());
    }
    let mut map = ICRC3Map::new();
    for IDLField { id, val } in fields {
        let value = match val {
            IDLValue::None => continue,
            IDLValue::Opt(v) => idl_to_value(*v),
            v => idl_to_value(v),
        };
        map.insert(label_key(&id), value);
    }
    ICRC3Value::Map(map)
}

fn label_key(label: &Label) -> String {
    match label {
        Label::Named(name) => name.clone(),
        Label::Id(id) | Label::Unnamed(id) => id.to_string(),
    }
}

/// Why an ICRC-3 value is not a value of the Candid type asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the value is not of the expected type: {0}")]
pub struct DecodeError(pub String);

/// The value of type `T` that [`to_value`] maps to `value`: the inverse of
/// the mapping, read against `T`'s Candid type, so a client can type an
/// event it has only as a block (from an archive). The result is mapped
/// again and compared, so only a value that is exactly some `T`'s mapping
/// is accepted.
pub fn from_value<T: CandidType + serde::de::DeserializeOwned>(
    value: &ICRC3Value,
) -> Result<T, DecodeError> {
    let ty = T::ty();
    let idl = value_to_idl(value, &ty)?;
    let bytes = candid::IDLArgs::new(&[idl])
        .to_bytes_with_types(&candid::TypeEnv::new(), &[ty])
        .map_err(|e| DecodeError(e.to_string()))?;
    let decoded: T = candid::decode_one(&bytes).map_err(|e| DecodeError(e.to_string()))?;
    let again = to_value(&decoded).map_err(|e| DecodeError(e.0))?;
    if again != *value {
        return Err(DecodeError("the value is no value's mapping".into()));
    }
    Ok(decoded)
}

fn value_to_idl(value: &ICRC3Value, ty: &candid::types::Type) -> Result<IDLValue, DecodeError> {
    use candid::types::TypeInner as T;
    let bad = || DecodeError(format!("{value:?} is not a {ty:?}"));
    let nat = || match value {
        ICRC3Value::Nat(n) => Ok(n.clone()),
        _ => Err(bad()),
    };
    let int = || match value {
        ICRC3Value::Int(i) => Ok(i.clone()),
        _ => Err(bad()),
    };
    let small_nat = || u64::try_from(nat()?.0).map_err(|_| bad());
    let small_int = || i64::try_from(int()?.0).map_err(|_| bad());
    let empty = || matches!(value, ICRC3Value::Array(items) if items.is_empty());
    Ok(match ty.as_ref() {
        T::Knot(id) => {
            let ty = candid::types::internal::find_type(id).ok_or_else(bad)?;
            return value_to_idl(value, &ty);
        }
        T::Null if empty() => IDLValue::Null,
        T::Reserved if empty() => IDLValue::Reserved,
        T::Bool => match small_nat()? {
            0 => IDLValue::Bool(false),
            1 => IDLValue::Bool(true),
            _ => return Err(bad()),
        },
        T::Nat => IDLValue::Nat(nat()?),
        T::Nat8 => IDLValue::Nat8(u8::try_from(small_nat()?).map_err(|_| bad())?),
        T::Nat16 => IDLValue::Nat16(u16::try_from(small_nat()?).map_err(|_| bad())?),
        T::Nat32 => IDLValue::Nat32(u32::try_from(small_nat()?).map_err(|_| bad())?),
        T::Nat64 => IDLValue::Nat64(small_nat()?),
        T::Int => IDLValue::Int(int()?),
        T::Int8 => IDLValue::Int8(i8::try_from(small_int()?).map_err(|_| bad())?),
        T::Int16 => IDLValue::Int16(i16::try_from(small_int()?).map_err(|_| bad())?),
        T::Int32 => IDLValue::Int32(i32::try_from(small_int()?).map_err(|_| bad())?),
        T::Int64 => IDLValue::Int64(small_int()?),
        T::Text => match value {
            ICRC3Value::Text(t) => IDLValue::Text(t.clone()),
            _ => return Err(bad()),
        },
        T::Float64 => match value {
            ICRC3Value::Text(t) => IDLValue::Float64(t.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        T::Float32 => match value {
            ICRC3Value::Text(t) => IDLValue::Float32(t.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        T::Principal | T::Service(_) => match value {
            ICRC3Value::Blob(b) => {
                let p = Principal::try_from_slice(b).map_err(|_| bad())?;
                if matches!(ty.as_ref(), T::Principal) {
                    IDLValue::Principal(p)
                } else {
                    IDLValue::Service(p)
                }
            }
            _ => return Err(bad()),
        },
        T::Func(_) => match value {
            ICRC3Value::Array(items) => match items.as_slice() {
                [ICRC3Value::Blob(b), ICRC3Value::Text(method)] => IDLValue::Func(
                    Principal::try_from_slice(b).map_err(|_| bad())?,
                    method.clone(),
                ),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        },
        T::Opt(inner) => match value {
            ICRC3Value::Array(items) => match items.as_slice() {
                [] => IDLValue::None,
                [one] => IDLValue::Opt(Box::new(value_to_idl(one, inner)?)),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        },
        T::Vec(inner) => match value {
            ICRC3Value::Blob(b) if matches!(inner.as_ref(), T::Nat8) => IDLValue::Blob(b.to_vec()),
            ICRC3Value::Array(items) => IDLValue::Vec(
                items
                    .iter()
                    .map(|item| value_to_idl(item, inner))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(bad()),
        },
        T::Record(fields) => {
            let is_tuple = !fields.is_empty()
                && fields.iter().enumerate().all(|(i, f)| match *f.id {
                    Label::Id(n) | Label::Unnamed(n) => usize::try_from(n).is_ok_and(|n| n == i),
                    Label::Named(_) => false,
                });
            let mut out = Vec::with_capacity(fields.len());
            match value {
                ICRC3Value::Array(items) if is_tuple && items.len() == fields.len() => {
                    for (f, item) in fields.iter().zip(items) {
                        out.push(IDLField {
                            id: (*f.id).clone(),
                            val: value_to_idl(item, &f.ty)?,
                        });
                    }
                }
                ICRC3Value::Map(map) if !is_tuple => {
                    for f in fields {
                        let field = map.get(&label_key(&f.id));
                        let val = match (field, f.ty.as_ref()) {
                            (None, T::Opt(_)) => IDLValue::None,
                            (None, T::Null | T::Reserved) => return Err(bad()),
                            (None, _) => return Err(bad()),
                            (Some(v), T::Opt(inner)) => {
                                IDLValue::Opt(Box::new(value_to_idl(v, inner)?))
                            }
                            (Some(v), _) => value_to_idl(v, &f.ty)?,
                        };
                        out.push(IDLField {
                            id: (*f.id).clone(),
                            val,
                        });
                    }
                }
                _ => return Err(bad()),
            }
            IDLValue::Record(out)
        }
        T::Variant(fields) => match value {
            ICRC3Value::Map(map) if map.len() == 1 => {
                let (tag, payload) = map.iter().next().ok_or_else(bad)?;
                let (index, f) = fields
                    .iter()
                    .enumerate()
                    .find(|(_, f)| label_key(&f.id) == *tag)
                    .ok_or_else(bad)?;
                IDLValue::Variant(VariantValue(
                    Box::new(IDLField {
                        id: (*f.id).clone(),
                        val: value_to_idl(payload, &f.ty)?,
                    }),
                    index as u64,
                ))
            }
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    })
}

/// The block of an event: its place in the chain (`phash`, the hash of
/// the block before; `None` for block 0), time, block type and event value.
pub fn block(phash: Option<Hash>, ts_ns: u64, btype: &str, ev: ICRC3Value) -> ICRC3Value {
    let mut map = ICRC3Map::new();
    if let Some(phash) = phash {
        map.insert(
            "phash".into(),
            ICRC3Value::Blob(ByteBuf::from(phash.to_vec())),
        );
    }
    map.insert("ts".into(), ICRC3Value::Nat(Nat::from(ts_ns)));
    map.insert("btype".into(), ICRC3Value::Text(btype.into()));
    map.insert("ev".into(), ev);
    ICRC3Value::Map(map)
}

/// The ICRC-3 hash of a block (of any ICRC-3 value).
pub fn block_hash(block: &ICRC3Value) -> Hash {
    block.clone().hash()
}

/// The parts of a block as [`block`] builds it, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockParts<'a> {
    /// The hash of the block before, absent in block 0.
    pub phash: Option<Hash>,
    /// IC time of the event, ns.
    pub ts_ns: u64,
    /// The block type.
    pub btype: &'a str,
    /// The event's value.
    pub ev: &'a ICRC3Value,
}

/// Why a value is not a block as [`block`] builds them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockShapeError {
    /// Not a Map.
    #[error("a block must be a Map")]
    NotAMap,
    /// A field is missing or of the wrong kind.
    #[error("the block's field `{0}` is missing or malformed")]
    Field(&'static str),
    /// A field no block carries.
    #[error("the block has an unknown field `{0}`")]
    UnknownField(String),
}

/// Reads a block's parts; only the fields [`block`] writes are allowed.
pub fn block_parts(block: &ICRC3Value) -> Result<BlockParts<'_>, BlockShapeError> {
    let ICRC3Value::Map(map) = block else {
        return Err(BlockShapeError::NotAMap);
    };
    if let Some(k) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "phash" | "ts" | "btype" | "ev"))
    {
        return Err(BlockShapeError::UnknownField(k.clone()));
    }
    let phash = match map.get("phash") {
        None => None,
        Some(ICRC3Value::Blob(b)) => {
            Some(<Hash>::try_from(b.as_slice()).map_err(|_| BlockShapeError::Field("phash"))?)
        }
        Some(_) => return Err(BlockShapeError::Field("phash")),
    };
    let ts_ns = match map.get("ts") {
        Some(ICRC3Value::Nat(n)) => {
            u64::try_from(n.0.clone()).map_err(|_| BlockShapeError::Field("ts"))?
        }
        _ => return Err(BlockShapeError::Field("ts")),
    };
    let btype = match map.get("btype") {
        Some(ICRC3Value::Text(t)) => t.as_str(),
        _ => return Err(BlockShapeError::Field("btype")),
    };
    let ev = map.get("ev").ok_or(BlockShapeError::Field("ev"))?;
    Ok(BlockParts {
        phash,
        ts_ns,
        btype,
        ev,
    })
}

/// Unsigned LEB128 of `n`, as the tip tree holds the last block's index.
pub fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
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

/// Reads an unsigned LEB128 number that fills `bytes` exactly.
pub fn read_leb128(bytes: &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for (i, byte) in bytes.iter().enumerate() {
        let shift = u32::try_from(i).ok()?.checked_mul(7)?;
        let part = u64::from(byte & 0x7f);
        if shift >= 64 || (shift > 0 && part >> (64 - shift) != 0) {
            return None;
        }
        n |= part << shift;
        if byte & 0x80 == 0 {
            return (i + 1 == bytes.len()).then_some(n);
        }
    }
    None
}

/// The ICRC-3 tip tree of a log whose last block is `last_index` with hash
/// `last_hash`; its root hash is the canister's certified data.
pub fn tip_tree(last_index: u64, last_hash: &Hash) -> HashTree {
    // Labels in order, so lookups in the tree find them.
    fork(
        label(LAST_BLOCK_HASH, leaf(last_hash.to_vec())),
        label(LAST_BLOCK_INDEX, leaf(leb128(last_index))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::{Deserialize, Principal};
    use ic_certification::{LookupResult, SubtreeLookupResult};

    #[derive(CandidType, Deserialize)]
    enum Sample {
        Paid {
            job: u64,
            amount: u128,
            to: Principal,
            memo: Option<String>,
            refund: Option<i64>,
            #[serde(with = "serde_bytes")]
            digest: Vec<u8>,
            keys: Vec<u32>,
            ok: bool,
            pair: (u8, String),
        },
        Stopped,
    }

    fn sample() -> Sample {
        Sample::Paid {
            job: 7,
            amount: 1_000_000_000_000_000_000_000,
            to: Principal::from_slice(&[1, 2, 3]),
            memo: None,
            refund: Some(-5),
            digest: vec![0xab; 3],
            keys: vec![1, 2],
            ok: true,
            pair: (9, "x".into()),
        }
    }

    fn map(entries: Vec<(&str, ICRC3Value)>) -> ICRC3Value {
        ICRC3Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    fn nat(n: u128) -> ICRC3Value {
        ICRC3Value::Nat(Nat::from(n))
    }

    fn blob(b: &[u8]) -> ICRC3Value {
        ICRC3Value::Blob(ByteBuf::from(b.to_vec()))
    }

    #[test]
    fn candid_values_map_by_the_documented_table() {
        let expected = map(vec![(
            "Paid",
            map(vec![
                ("job", nat(7)),
                ("amount", nat(1_000_000_000_000_000_000_000)),
                ("to", blob(&[1, 2, 3])),
                ("refund", ICRC3Value::Int(Int::from(-5))),
                ("digest", blob(&[0xab; 3])),
                ("keys", ICRC3Value::Array(vec![nat(1), nat(2)])),
                ("ok", nat(1)),
                (
                    "pair",
                    ICRC3Value::Array(vec![nat(9), ICRC3Value::Text("x".into())]),
                ),
            ]),
        )]);
        assert_eq!(to_value(&sample()).unwrap(), expected);
        assert_eq!(
            to_value(&Sample::Stopped).unwrap(),
            map(vec![("Stopped", ICRC3Value::Array(vec![]))])
        );
        // Opt outside a record field, and a vec nat8 without serde_bytes.
        assert_eq!(
            to_value(&vec![Some(1u8), None]).unwrap(),
            ICRC3Value::Array(vec![
                ICRC3Value::Array(vec![nat(1)]),
                ICRC3Value::Array(vec![])
            ])
        );
        assert_eq!(to_value(&vec![1u8, 2]).unwrap(), blob(&[1, 2]));
    }

    #[test]
    fn from_value_inverts_to_value_and_refuses_what_no_value_maps_to() {
        let back: Sample = from_value(&to_value(&sample()).unwrap()).unwrap();
        assert_eq!(to_value(&back).unwrap(), to_value(&sample()).unwrap());
        let stopped: Sample = from_value(&to_value(&Sample::Stopped).unwrap()).unwrap();
        assert!(matches!(stopped, Sample::Stopped));
        let nested = vec![Some(1u8), None];
        assert_eq!(
            from_value::<Vec<Option<u8>>>(&to_value(&nested).unwrap()),
            Ok(nested)
        );
        assert_eq!(
            from_value::<Vec<u8>>(&to_value(&vec![1u8, 2]).unwrap()),
            Ok(vec![1, 2])
        );
        let none: Vec<u8> = vec![];
        assert_eq!(from_value::<Vec<u8>>(&to_value(&none).unwrap()), Ok(none));
        // A field changed to another type, an unknown tag, an extra field.
        let ICRC3Value::Map(mut paid) = to_value(&sample()).unwrap() else {
            unreachable!()
        };
        let mut fields = match paid.remove("Paid") {
            Some(ICRC3Value::Map(m)) => m,
            other => panic!("{other:?}"),
        };
        let mut wrong = fields.clone();
        wrong.insert("job".into(), ICRC3Value::Text("7".into()));
        let wrap = |m: ICRC3Map, tag: &str| {
            ICRC3Value::Map(ICRC3Map::from([(tag.to_string(), ICRC3Value::Map(m))]))
        };
        assert!(from_value::<Sample>(&wrap(wrong, "Paid")).is_err());
        assert!(from_value::<Sample>(&wrap(fields.clone(), "Unpaid")).is_err());
        fields.insert("extra".into(), nat(1));
        assert!(from_value::<Sample>(&wrap(fields, "Paid")).is_err());
        // A Nat too large for its nat64, and a bool that is neither 0 nor 1.
        assert!(from_value::<u64>(&ICRC3Value::Nat(Nat::from(u128::MAX))).is_err());
        assert!(from_value::<bool>(&nat(2)).is_err());
    }

    #[test]
    fn a_fixed_block_has_a_fixed_hash() {
        // A change of the mapping, the block layout or the hash must change
        // this value: logs already certified would no longer verify.
        let b0 = block(
            None,
            1_700_000_000_000_000_000,
            "market.test",
            to_value(&sample()).unwrap(),
        );
        let h0 = block_hash(&b0);
        assert_eq!(
            hex(&h0),
            "351264190074b90062078ec5322fd94838e6d5e5d72849bc60a655b881500dd4"
        );
        let b1 = block(
            Some(h0),
            1_700_000_000_000_000_001,
            "market.test",
            to_value(&Sample::Stopped).unwrap(),
        );
        assert_eq!(
            hex(&block_hash(&b1)),
            "af0acd0b12e17589f858220652dac605e09388ed68124e0f7dbb99a1af4ff370"
        );
    }

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn block_parts_reads_what_block_writes() {
        let ev = to_value(&Sample::Stopped).unwrap();
        let b = block(Some([3; 32]), 42, "market.test", ev.clone());
        let parts = block_parts(&b).unwrap();
        assert_eq!(
            parts,
            BlockParts {
                phash: Some([3; 32]),
                ts_ns: 42,
                btype: "market.test",
                ev: &ev
            }
        );
        assert_eq!(
            block_parts(&block(None, 1, "t", ev.clone())).unwrap().phash,
            None
        );
        let ICRC3Value::Map(mut m) = b else {
            unreachable!()
        };
        m.insert("extra".into(), nat(1));
        assert_eq!(
            block_parts(&ICRC3Value::Map(m)),
            Err(BlockShapeError::UnknownField("extra".into()))
        );
    }

    #[test]
    fn leb128_round_trips() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(read_leb128(&leb128(n)), Some(n), "{n}");
        }
        assert_eq!(leb128(300), vec![0xac, 0x02]);
        assert_eq!(read_leb128(&[0x80]), None);
        assert_eq!(read_leb128(&[0x01, 0x00]), None);
        assert_eq!(read_leb128(&[0xff; 11]), None);
    }

    #[test]
    fn the_tip_tree_holds_index_and_hash_under_its_root() {
        let tree = tip_tree(300, &[7; 32]);
        assert_eq!(
            tree.lookup_path([LAST_BLOCK_INDEX.as_bytes()]),
            LookupResult::Found(&[0xac, 0x02][..])
        );
        assert_eq!(
            tree.lookup_path([LAST_BLOCK_HASH.as_bytes()]),
            LookupResult::Found(&[7u8; 32][..])
        );
        assert!(matches!(
            tree.lookup_subtree([b"other".as_slice()]),
            SubtreeLookupResult::Absent
        ));
        // The root as the IC's hash tree rules give it, written out.
        use sha2::{Digest, Sha256};
        let sha = |parts: &[&[u8]]| -> Hash {
            let mut h = Sha256::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().into()
        };
        let leaf_hash = |data: &[u8]| sha(&[b"\x10ic-hashtree-leaf", data]);
        let labeled = |l: &[u8], h: &Hash| sha(&[b"\x13ic-hashtree-labeled", l, h]);
        let expected = sha(&[
            b"\x10ic-hashtree-fork",
            &labeled(b"last_block_hash", &leaf_hash(&[7; 32])),
            &labeled(b"last_block_index", &leaf_hash(&[0xac, 0x02])),
        ]);
        assert_eq!(tree.digest(), expected);
        assert_ne!(tip_tree(301, &[7; 32]).digest(), expected);
    }
}
