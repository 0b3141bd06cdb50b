//! A fast structural check of a module before it reaches the compiler, so
//! that compile-time bombs (huge or deeply nested functions, thousands of
//! locals or imports) are refused in microseconds rather than burning a
//! compile slot.

use wasmparser_sandbox::{Operator, Parser, Payload};

use super::config::ModuleShapeLimits;

/// Checks `wasm` against `limits`; the error says which limit was exceeded.
/// Malformed input is reported too, though full validation is left to
/// wasmtime.
pub fn check_shape(wasm: &[u8], limits: &ModuleShapeLimits) -> Result<(), String> {
    let mut functions = 0u32;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("malformed module: {e}"))? {
            Payload::ImportSection(reader) if reader.count() > limits.max_imports => {
                return Err(format!(
                    "{} imports, limit {}",
                    reader.count(),
                    limits.max_imports
                ));
            }
            Payload::FunctionSection(reader) if reader.count() > limits.max_functions => {
                return Err(format!(
                    "{} functions, limit {}",
                    reader.count(),
                    limits.max_functions
                ));
            }
            Payload::CodeSectionEntry(body) => {
                functions += 1;
                check_body(functions - 1, &body, limits)?;
            }
            Payload::ComponentSection { .. } | Payload::ModuleSection { .. } => {
                return Err("components are not accepted; a job is a core module".into());
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_body(
    index: u32,
    body: &wasmparser_sandbox::FunctionBody<'_>,
    limits: &ModuleShapeLimits,
) -> Result<(), String> {
    let malformed = |e: wasmparser_sandbox::BinaryReaderError| format!("malformed module: {e}");
    let size = body.range().len();
    if size > limits.max_function_body_bytes {
        return Err(format!(
            "function {index} body is {size} bytes, limit {}",
            limits.max_function_body_bytes
        ));
    }
    let mut locals = 0u32;
    let mut reader = body.get_locals_reader().map_err(malformed)?;
    for _ in 0..reader.get_count() {
        let (count, _) = reader.read().map_err(malformed)?;
        locals = locals.saturating_add(count);
        if locals > limits.max_locals {
            return Err(format!(
                "function {index} declares over {} locals",
                limits.max_locals
            ));
        }
    }
    let mut ops = body.get_operators_reader().map_err(malformed)?;
    let mut depth = 0u32;
    while !ops.eof() {
        match ops.read().map_err(malformed)? {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::TryTable { .. } => {
                depth += 1;
                if depth > limits.max_nesting {
                    return Err(format!(
                        "function {index} nests blocks deeper than {}",
                        limits.max_nesting
                    ));
                }
            }
            Operator::End => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}
