//! Candid text of a Rust value, as `dfx`, `quill` and `didc` read it, with
//! the field and variant names of its type.
//!
//! The value is walked through its own `CandidType` serialization (the same
//! calls that produce its binary encoding), with its type alongside for the
//! names, so the text says exactly what the bytes say. (candid's `IDLValue`
//! printer sits behind the `value` feature, which the `market` binary does
//! not build with.) Blobs print every byte as `\xx`; records and variants
//! that don't fit on a line are spread over several, indented by two.

use std::fmt::Write as _;

use candid::CandidType;
use candid::types::internal::find_type;
use candid::types::{Compound, Label, Serializer, Type, TypeInner};

/// The Candid text of `value`, spread over lines where it is long.
pub fn candid_text<T: CandidType + ?Sized>(value: &T) -> String {
    let mut text = String::new();
    write_value(&mut text, &tree(value), 0);
    text
}

/// The Candid text of `value` on one line, e.g. for a shell command.
pub fn candid_line<T: CandidType + ?Sized>(value: &T) -> String {
    inline(&tree(value))
}

fn tree<T: CandidType + ?Sized>(value: &T) -> Value {
    let mut tree = Value::Null;
    value
        .idl_serialize(Slot {
            out: &mut tree,
            ty: T::ty(),
        })
        .expect("BUG: a payload type does not serialize to Candid text");
    tree
}

/// A blob literal: `blob "\xx\xx..."`, every byte escaped.
pub fn blob_text(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(7 + 3 * bytes.len());
    s.push_str("blob \"");
    for b in bytes {
        let _ = write!(s, "\\{b:02x}");
    }
    s.push('"');
    s
}

/// What is printed: a value with the labels of its type.
#[derive(Debug)]
enum Value {
    Null,
    /// A number, bool or float, already in Candid text.
    Literal(String),
    Text(String),
    Principal(Vec<u8>),
    Blob(Vec<u8>),
    Opt(Option<Box<Value>>),
    Vec(Vec<Value>),
    Record(Vec<(Label, Value)>),
    /// A variant case; `Null` for a case without data.
    Variant(Label, Box<Value>),
}

/// Width beyond which a record or variant is spread over lines.
const WIDTH: usize = 80;

fn write_value(out: &mut String, v: &Value, indent: usize) {
    let one_line = inline(v);
    if indent + one_line.len() <= WIDTH || !spreads(v) {
        out.push_str(&one_line);
        return;
    }
    let pad = " ".repeat(indent + 2);
    match v {
        Value::Opt(Some(inner)) => {
            out.push_str("opt ");
            write_value(out, inner, indent);
        }
        Value::Vec(items) => {
            out.push_str("vec {\n");
            for item in items {
                out.push_str(&pad);
                write_value(out, item, indent + 2);
                out.push_str(";\n");
            }
            out.push_str(&" ".repeat(indent));
            out.push('}');
        }
        Value::Record(fields) => {
            out.push_str("record {\n");
            let tuple = is_tuple(fields);
            for (label, value) in fields {
                out.push_str(&pad);
                if !tuple {
                    out.push_str(&label_text(label));
                    out.push_str(" = ");
                }
                write_value(out, value, indent + 2);
                out.push_str(";\n");
            }
            out.push_str(&" ".repeat(indent));
            out.push('}');
        }
        Value::Variant(label, value) => {
            out.push_str("variant {\n");
            out.push_str(&pad);
            out.push_str(&label_text(label));
            out.push_str(" = ");
            write_value(out, value, indent + 2);
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            out.push('}');
        }
        _ => out.push_str(&one_line),
    }
}

/// Whether `v` can be spread over several lines.
fn spreads(v: &Value) -> bool {
    match v {
        Value::Opt(Some(inner)) => spreads(inner),
        Value::Vec(items) => !items.is_empty(),
        Value::Record(fields) => !fields.is_empty(),
        Value::Variant(_, value) => !matches!(**value, Value::Null),
        _ => false,
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Literal(s) => s.clone(),
        Value::Text(s) => text_literal(s),
        Value::Principal(bytes) => format!(
            "principal \"{}\"",
            candid::Principal::from_slice(bytes).to_text()
        ),
        Value::Blob(bytes) => blob_text(bytes),
        Value::Opt(None) => "null".into(),
        Value::Opt(Some(inner)) => format!("opt {}", inline(inner)),
        Value::Vec(items) if items.is_empty() => "vec {}".into(),
        Value::Vec(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("vec {{ {} }}", items.join("; "))
        }
        Value::Record(fields) if fields.is_empty() => "record {}".into(),
        Value::Record(fields) => {
            let tuple = is_tuple(fields);
            let fields: Vec<String> = fields
                .iter()
                .map(|(label, value)| {
                    if tuple {
                        inline(value)
                    } else {
                        format!("{} = {}", label_text(label), inline(value))
                    }
                })
                .collect();
            format!("record {{ {} }}", fields.join("; "))
        }
        Value::Variant(label, value) => match **value {
            Value::Null => format!("variant {{ {} }}", label_text(label)),
            _ => format!("variant {{ {} = {} }}", label_text(label), inline(value)),
        },
    }
}

/// A record whose labels are 0, 1, 2...: printed without them.
fn is_tuple(fields: &[(Label, Value)]) -> bool {
    fields.iter().enumerate().all(
        |(i, (label, _))| matches!(label, Label::Unnamed(n) | Label::Id(n) if *n as usize == i),
    )
}

fn label_text(label: &Label) -> String {
    match label {
        Label::Named(name) if is_identifier(name) => name.clone(),
        Label::Named(name) => text_literal(name),
        Label::Id(n) | Label::Unnamed(n) => n.to_string(),
    }
}

/// The words of Candid's text format, which a label must quote.
const KEYWORDS: [&str; 16] = [
    "blob",
    "composite_query",
    "false",
    "func",
    "import",
    "null",
    "oneway",
    "opt",
    "principal",
    "query",
    "record",
    "service",
    "true",
    "type",
    "variant",
    "vec",
];

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name)
}

/// A text literal: Rust's escapes (`\"`, `\\`, `\n`, `\u{..}`) are Candid's.
fn text_literal(s: &str) -> String {
    format!("{s:?}")
}

/// Where one value goes, and its type.
struct Slot<'a> {
    out: &'a mut Value,
    ty: Type,
}

/// A type with a recursion knot replaced by what it stands for.
fn resolve(ty: &Type) -> Type {
    match ty.as_ref() {
        TypeInner::Knot(id) => find_type(id).unwrap_or_else(|| ty.clone()),
        _ => ty.clone(),
    }
}

fn literal(out: &mut Value, text: impl ToString) -> Result<(), candid::Error> {
    *out = Value::Literal(text.to_string());
    Ok(())
}

impl<'a> Serializer for Slot<'a> {
    type Error = candid::Error;
    type Compound = Elements<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Self::Error> {
        literal(self.out, v)
    }
    fn serialize_int(self, v: &candid::Int) -> Result<(), Self::Error> {
        literal(self.out, v.0.to_string())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Self::Error> {
        literal(self.out, v)
    }
    fn serialize_nat(self, v: &candid::Nat) -> Result<(), Self::Error> {
        literal(self.out, v.0.to_string())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Self::Error> {
        literal(self.out, v)
    }
    fn serialize_nat8(self, v: u8) -> Result<(), Self::Error> {
        literal(self.out, v)
    }
    fn serialize_nat16(self, v: u16) -> Result<(), Self::Error> {
        literal(self.out, v)
    }
    fn serialize_nat32(self, v: u32) -> Result<(), Self::Error> {
        literal(self.out, v)
    }
    fn serialize_nat64(self, v: u64) -> Result<(), Self::Error> {
        literal(self.out, v)
    }
    fn serialize_int8(self, v: i8) -> Result<(), Self::Error> {
        literal(self.out, v)
    }
    fn serialize_int16(self, v: i16) -> Result<(), Self::Error> {
        literal(self.out, v)
    }
    fn serialize_int32(self, v: i32) -> Result<(), Self::Error> {
        literal(self.out, v)
    }
    fn serialize_int64(self, v: i64) -> Result<(), Self::Error> {
        literal(self.out, v)
    }
    fn serialize_float32(self, v: f32) -> Result<(), Self::Error> {
        literal(self.out, format!("{v:?}"))
    }
    fn serialize_float64(self, v: f64) -> Result<(), Self::Error> {
        literal(self.out, format!("{v:?}"))
    }
    fn serialize_text(self, v: &str) -> Result<(), Self::Error> {
        *self.out = Value::Text(v.to_string());
        Ok(())
    }
    fn serialize_null(self, _: ()) -> Result<(), Self::Error> {
        *self.out = Value::Null;
        Ok(())
    }
    fn serialize_empty(self) -> Result<(), Self::Error> {
        Err(candid::Error::msg("a value of type empty cannot exist"))
    }
    fn serialize_option<T>(self, v: Option<&T>) -> Result<(), Self::Error>
    where
        T: CandidType + ?Sized,
    {
        *self.out = Value::Opt(None);
        if let (Some(v), Value::Opt(slot)) = (v, &mut *self.out) {
            let inner = slot.insert(Box::new(Value::Null));
            v.idl_serialize(Slot {
                out: inner,
                ty: T::ty(),
            })?;
        }
        Ok(())
    }
    fn serialize_struct(self) -> Result<Self::Compound, Self::Error> {
        let labels = match resolve(&self.ty).as_ref() {
            TypeInner::Record(fields) => fields.iter().map(|f| (*f.id).clone()).collect(),
            other => {
                return Err(candid::Error::msg(format!(
                    "a record serialized as {other:?}"
                )));
            }
        };
        *self.out = Value::Record(vec![]);
        Ok(Elements {
            out: self.out,
            kind: Kind::Record { labels },
        })
    }
    fn serialize_vec(self, len: usize) -> Result<Self::Compound, Self::Error> {
        let bytes = match resolve(&self.ty).as_ref() {
            TypeInner::Vec(inner) => matches!(resolve(inner).as_ref(), TypeInner::Nat8),
            other => {
                return Err(candid::Error::msg(format!("a vec serialized as {other:?}")));
            }
        };
        *self.out = if bytes {
            Value::Blob(Vec::with_capacity(len))
        } else {
            Value::Vec(Vec::with_capacity(len))
        };
        Ok(Elements {
            out: self.out,
            kind: Kind::Vec,
        })
    }
    fn serialize_blob(self, v: &[u8]) -> Result<(), Self::Error> {
        *self.out = Value::Blob(v.to_vec());
        Ok(())
    }
    fn serialize_variant(self, index: u64) -> Result<Self::Compound, Self::Error> {
        let field = match resolve(&self.ty).as_ref() {
            TypeInner::Variant(fields) => usize::try_from(index)
                .ok()
                .and_then(|i| fields.get(i))
                .cloned()
                .ok_or_else(|| candid::Error::msg(format!("no variant case {index}")))?,
            other => {
                return Err(candid::Error::msg(format!(
                    "a variant serialized as {other:?}"
                )));
            }
        };
        // A case with an empty record serializes no element at all.
        let payload = match resolve(&field.ty).as_ref() {
            TypeInner::Record(fields) if fields.is_empty() => Value::Record(vec![]),
            _ => Value::Null,
        };
        *self.out = Value::Variant((*field.id).clone(), Box::new(payload));
        Ok(Elements {
            out: self.out,
            kind: Kind::Variant { case: field.ty },
        })
    }
    fn serialize_principal(self, v: &[u8]) -> Result<(), Self::Error> {
        *self.out = Value::Principal(v.to_vec());
        Ok(())
    }
    fn serialize_function(self, _: &[u8], _: &str) -> Result<(), Self::Error> {
        Err(candid::Error::msg("func values are not printed"))
    }
}

/// The parts of a record, vec or variant, serialized one at a time.
struct Elements<'a> {
    out: &'a mut Value,
    kind: Kind,
}

enum Kind {
    /// The record's labels, in the order its fields are serialized.
    Record {
        labels: Vec<Label>,
    },
    Vec,
    /// The case's type: a newtype case serializes one value of it, a case
    /// with named fields serializes those fields one by one.
    Variant {
        case: Type,
    },
}

impl Elements<'_> {
    /// Where the next element goes and, for a case's named field, its label.
    fn next_slot(&mut self, element_ty: &Type) -> Result<&mut Value, candid::Error> {
        match (&self.kind, &mut *self.out) {
            (Kind::Record { labels }, Value::Record(fields)) => {
                let label = labels
                    .get(fields.len())
                    .cloned()
                    .ok_or_else(|| candid::Error::msg("more fields than the record type has"))?;
                fields.push((label, Value::Null));
                Ok(&mut fields.last_mut().expect("just pushed").1)
            }
            (Kind::Vec, Value::Vec(items)) => {
                items.push(Value::Null);
                Ok(items.last_mut().expect("just pushed"))
            }
            (Kind::Variant { case }, Value::Variant(_, payload)) => {
                let case = resolve(case);
                let newtype = matches!(**payload, Value::Null) && resolve(element_ty) == case;
                if newtype {
                    return Ok(&mut **payload);
                }
                // A case with fields: they fill a record of the case's type.
                let TypeInner::Record(labels) = case.as_ref() else {
                    return Err(candid::Error::msg(
                        "a variant case with fields is no record",
                    ));
                };
                if matches!(**payload, Value::Null) {
                    **payload = Value::Record(vec![]);
                }
                let Value::Record(fields) = &mut **payload else {
                    return Err(candid::Error::msg("a variant case serialized twice"));
                };
                let label = labels
                    .get(fields.len())
                    .map(|f| (*f.id).clone())
                    .ok_or_else(|| candid::Error::msg("more fields than the case has"))?;
                fields.push((label, Value::Null));
                Ok(&mut fields.last_mut().expect("just pushed").1)
            }
            _ => Err(candid::Error::msg(
                "BUG: compound out of step with its value",
            )),
        }
    }
}

impl Compound for Elements<'_> {
    type Error = candid::Error;

    fn serialize_element<T>(&mut self, v: &T) -> Result<(), Self::Error>
    where
        T: CandidType + ?Sized,
    {
        let ty = T::ty();
        if let Value::Blob(bytes) = &mut *self.out {
            // Elements of a vec nat8 arrive one by one.
            let mut byte = Value::Null;
            v.idl_serialize(Slot { out: &mut byte, ty })?;
            let parsed = match byte {
                Value::Literal(s) => s.parse::<u8>().ok(),
                _ => None,
            };
            bytes.push(parsed.ok_or_else(|| candid::Error::msg("a blob element is no nat8"))?);
            return Ok(());
        }
        let slot = self.next_slot(&ty)?;
        v.idl_serialize(Slot { out: slot, ty })
    }

    fn serialize_blob(&mut self, blob: &[u8]) -> Result<(), Self::Error> {
        let ty: Type = TypeInner::Vec(TypeInner::Nat8.into()).into();
        let slot = self.next_slot(&ty)?;
        *slot = Value::Blob(blob.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::{Deserialize, Principal};

    #[derive(CandidType, Deserialize)]
    enum Case {
        Unit,
        Newtype(Inner),
        Fields { sha256: [u8; 2], n: u8 },
        Empty {},
    }

    #[derive(CandidType, Deserialize)]
    struct Inner {
        text: String,
        #[serde(rename = "type")]
        kind: u64,
    }

    #[derive(CandidType, Deserialize)]
    struct Outer {
        who: Principal,
        maybe: Option<Option<u32>>,
        none: Option<u32>,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        pairs: Vec<(String, String)>,
        cases: Vec<Case>,
        amount: u128,
        signed: i32,
    }

    #[test]
    fn values_print_with_their_type_names() {
        let v = Outer {
            who: Principal::from_slice(&[1, 2, 3]),
            maybe: Some(Some(7)),
            none: None,
            bytes: vec![0, 0xff, b'a'],
            pairs: vec![("K".into(), "v \"q\"\n".into())],
            cases: vec![
                Case::Unit,
                Case::Newtype(Inner {
                    text: "t".into(),
                    kind: 1,
                }),
                Case::Fields {
                    sha256: [0xab, 0xcd],
                    n: 9,
                },
                Case::Empty {},
            ],
            amount: u128::MAX,
            signed: -4,
        };
        // Records print in the order of their fields' hashes, as candid
        // encodes them.
        let expected = r#"record {
  who = principal "kw6ia-hibai-bq";
  maybe = opt opt 7;
  cases = vec {
    variant { Unit };
    variant { Newtype = record { text = "t"; "type" = 1 } };
    variant { Fields = record { n = 9; sha256 = blob "\ab\cd" } };
    variant { Empty = record {} };
  };
  none = null;
  signed = -4;
  pairs = vec { record { "K"; "v \"q\"\n" } };
  bytes = blob "\00\ff\61";
  amount = 340282366920938463463374607431768211455;
}"#;
        assert_eq!(candid_text(&v), expected);
        assert_eq!(
            candid_line(&v).lines().count(),
            1,
            "the one-line form has no line breaks"
        );
    }

    #[test]
    fn long_variants_spread_over_lines() {
        let long = Case::Newtype(Inner {
            text: "x".repeat(80),
            kind: 3,
        });
        let expected = format!(
            "variant {{\n  Newtype = record {{\n    text = \"{}\";\n    \"type\" = 3;\n  }}\n}}",
            "x".repeat(80)
        );
        assert_eq!(candid_text(&long), expected);
    }

    #[test]
    fn short_values_stay_on_one_line() {
        assert_eq!(candid_text(&Some(5u64)), "opt 5");
        assert_eq!(
            candid_text(&Inner {
                text: "x".into(),
                kind: 2
            }),
            "record { text = \"x\"; \"type\" = 2 }"
        );
        assert_eq!(blob_text(&[1, 0x10]), "blob \"\\01\\10\"");
    }
}
