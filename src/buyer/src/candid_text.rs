//! Candid text of a Rust value, as `dfx`, `quill` and `didc` read it, with
//! the field and variant names of its type: candid's own value printer
//! (its `value` feature) over the value converted through its `CandidType`
//! serialization, so the text says exactly what the encoded bytes say.

use candid::CandidType;
use candid::IDLValue;
use std::fmt::Write as _;

fn value<T: CandidType + ?Sized>(v: &T) -> IDLValue {
    // Serializing a payload type into a value only fails for types candid
    // can't encode at all (a bug here, not bad input).
    IDLValue::try_from_candid_type(&v).expect("BUG: a payload type does not convert to Candid")
}

/// The Candid text of `v`, spread over lines where it is long.
pub fn candid_text<T: CandidType + ?Sized>(v: &T) -> String {
    value(v).to_string()
}

/// The Candid text of `v` on one line, e.g. for a shell command.
pub fn candid_line<T: CandidType + ?Sized>(v: &T) -> String {
    candid::pretty::candid::value::pp_value(usize::MAX, &value(v))
        .pretty(usize::MAX)
        .to_string()
}

/// A blob literal with every byte escaped: `blob "\xx\xx..."`.
pub fn blob_text(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(7 + 3 * bytes.len());
    s.push_str("blob \"");
    for b in bytes {
        let _ = write!(s, "\\{b:02x}");
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::{Deserialize, Principal};

    #[derive(CandidType, Deserialize, Debug, PartialEq)]
    struct Outer {
        who: Principal,
        maybe: Option<u32>,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        cases: Vec<Case>,
    }

    #[derive(CandidType, Deserialize, Debug, PartialEq)]
    enum Case {
        Unit,
        Fields { n: u8 },
    }

    #[test]
    fn the_text_names_fields_and_reads_back_as_the_same_value() {
        let v = Outer {
            who: Principal::from_slice(&[1, 2, 3]),
            maybe: Some(7),
            bytes: vec![0, 0xff, b'a'],
            cases: vec![Case::Unit, Case::Fields { n: 9 }],
        };
        for text in [candid_text(&v), candid_line(&v)] {
            for name in ["who =", "maybe =", "bytes =", "Unit", "Fields", "n ="] {
                assert!(text.contains(name), "{name} missing from {text}");
            }
            let parsed = candid_parser::parse_idl_args(&format!("({text})")).unwrap();
            let bytes = parsed
                .to_bytes_with_types(&candid::types::TypeEnv::new(), &[Outer::ty()])
                .unwrap();
            assert_eq!(candid::decode_one::<Outer>(&bytes).unwrap(), v, "{text}");
        }
        assert!(!candid_line(&v).contains('\n'));
        assert_eq!(blob_text(&[0, 0xab]), r#"blob "\00\ab""#);
    }
}
