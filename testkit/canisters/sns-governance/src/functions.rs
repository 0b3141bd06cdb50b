//! Generic nervous system functions: which checks AddGenericNervousSystemFunction
//! makes before registering one, and the canister methods it names.

use candid::Principal;
use market_api::sns::{FunctionType, GenericNervousSystemFunction, NervousSystemFunction};

/// Ids below this are the SNS's native functions.
pub const MIN_GENERIC_FUNCTION_ID: u64 = 1000;

/// A canister method that governance calls with a proposal's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub canister: Principal,
    pub method: String,
}

/// A registered generic function: the validator called when a proposal is
/// made and the target called once it is adopted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenericFunction {
    pub id: u64,
    pub validator: Endpoint,
    pub target: Endpoint,
}

/// Checks `function` as SNS governance does (`ValidGenericNervousSystemFunction`
/// and the reserved-canister check) and returns what to register. The
/// messages are governance's. `reserved` holds the canisters no function may
/// call (governance itself and the management canister here; a real SNS also
/// reserves its root, ledger, swap and the ICP ledger).
pub fn validate(
    function: &NervousSystemFunction,
    reserved: &[Principal],
) -> Result<GenericFunction, String> {
    if matches!(
        function.function_type,
        Some(FunctionType::NativeNervousSystemFunction {})
    ) {
        return Err("NervousSystemFunction is not generic.".into());
    }
    let mut defects = Vec::new();
    if function.id < MIN_GENERIC_FUNCTION_ID {
        defects.push(format!(
            "NervousSystemFunction's must have ids starting at {MIN_GENERIC_FUNCTION_ID}"
        ));
    }
    if function.name.is_empty() || function.name.len() > 256 {
        defects.push("NervousSystemFunction's must have set name with a max of 255 bytes".into());
    }
    if function
        .description
        .as_ref()
        .is_some_and(|d| d.len() > 10_000)
    {
        defects.push("NervousSystemFunction's description must be at most 10000 bytes".into());
    }
    let Some(FunctionType::GenericNervousSystemFunction(generic)) = &function.function_type else {
        defects.push(
            "NervousSystemFunction must have a function_type set to GenericNervousSystemFunction"
                .into(),
        );
        return Err(invalid(&defects));
    };
    let GenericNervousSystemFunction {
        topic: _,
        validator_canister_id,
        target_canister_id,
        validator_method_name,
        target_method_name,
    } = generic;
    let mut required = |value: &Option<_>, what: &str| {
        if value.is_none() {
            defects.push(format!("{what} field was not populated."));
        }
        *value
    };
    let target_canister = required(target_canister_id, "target_canister_id");
    let validator_canister = required(validator_canister_id, "validator_canister_id");
    let mut method = |name: &Option<String>, what: &str| match name {
        Some(m) if !m.is_empty() => Some(m.clone()),
        _ => {
            defects.push(format!("{what} was empty."));
            None
        }
    };
    let target_method = method(target_method_name, "target_method_name");
    let validator_method = method(validator_method_name, "validator_method_name");
    let (
        Some(target_canister),
        Some(validator_canister),
        Some(target_method),
        Some(validator_method),
    ) = (
        target_canister,
        validator_canister,
        target_method,
        validator_method,
    )
    else {
        return Err(invalid(&defects));
    };
    if !defects.is_empty() {
        return Err(invalid(&defects));
    }
    if reserved.contains(&target_canister) || reserved.contains(&validator_canister) {
        return Err(
            "Cannot add generic nervous system functions that targets sns core \
                    canisters, the NNS ledger, or ic00"
                .into(),
        );
    }
    Ok(GenericFunction {
        id: function.id,
        validator: Endpoint {
            canister: validator_canister,
            method: validator_method,
        },
        target: Endpoint {
            canister: target_canister,
            method: target_method,
        },
    })
}

fn invalid(defects: &[String]) -> String {
    format!(
        "ExecuteNervousSystemFunction was invalid for the following reason(s):\n{}",
        defects.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dao() -> Principal {
        Principal::from_slice(&[7; 10])
    }

    fn generic(id: u64) -> NervousSystemFunction {
        NervousSystemFunction {
            id,
            name: "reserve".into(),
            description: None,
            function_type: Some(FunctionType::GenericNervousSystemFunction(
                GenericNervousSystemFunction {
                    topic: None,
                    validator_canister_id: Some(dao()),
                    target_canister_id: Some(dao()),
                    validator_method_name: Some("validate".into()),
                    target_method_name: Some("execute".into()),
                },
            )),
        }
    }

    fn with_generic(
        mut f: NervousSystemFunction,
        change: impl FnOnce(&mut GenericNervousSystemFunction),
    ) -> NervousSystemFunction {
        if let Some(FunctionType::GenericNervousSystemFunction(g)) = &mut f.function_type {
            change(g);
        }
        f
    }

    #[test]
    fn a_complete_generic_function_is_accepted() {
        let f = validate(&generic(1000), &[]).unwrap();
        assert_eq!(f.id, 1000);
        assert_eq!(f.validator.method, "validate");
        assert_eq!(f.target.method, "execute");
        assert_eq!(f.target.canister, dao());
    }

    #[test]
    fn native_ids_and_incomplete_functions_are_refused() {
        let err = validate(&generic(999), &[]).unwrap_err();
        assert!(err.contains("ids starting at 1000"), "{err}");

        let mut no_type = generic(1000);
        no_type.function_type = None;
        assert!(
            validate(&no_type, &[])
                .unwrap_err()
                .contains("function_type")
        );

        let mut native = generic(1000);
        native.function_type = Some(FunctionType::NativeNervousSystemFunction {});
        assert!(validate(&native, &[]).unwrap_err().contains("not generic"));

        // Each part of a generic function that is missing, and the field the refusal names.
        type Change = fn(&mut GenericNervousSystemFunction);
        let incomplete: [(Change, &str); 4] = [
            (|g| g.target_canister_id = None, "target_canister_id"),
            (|g| g.validator_canister_id = None, "validator_canister_id"),
            (
                |g| g.target_method_name = Some("".into()),
                "target_method_name",
            ),
            (|g| g.validator_method_name = None, "validator_method_name"),
        ];
        for (change, field) in incomplete {
            let err = validate(&with_generic(generic(1000), change), &[]).unwrap_err();
            assert!(err.contains(field), "{err}");
        }

        let mut unnamed = generic(1000);
        unnamed.name = String::new();
        assert!(validate(&unnamed, &[]).unwrap_err().contains("name"));
    }

    #[test]
    fn reserved_canisters_are_refused_as_validator_or_target() {
        let err = validate(&generic(1000), &[dao()]).unwrap_err();
        assert!(err.contains("ic00"), "{err}");
    }
}
