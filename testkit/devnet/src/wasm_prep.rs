//! Preparing a canister module for execution: checking its imports against
//! the implemented system API and exporting what rollback needs.
//!
//! Rolling a trapped message back means restoring linear memory *and* every
//! mutable global (Rust modules keep `__stack_pointer` there), and calling a
//! callback means reading the indirect function table. Neither is
//! necessarily exported, so the module's export section is rewritten to also
//! export them under reserved names.

use crate::error::InstallError;

/// Export name prefix for mutable globals the devnet snapshots.
pub(crate) const GLOBAL_EXPORT_PREFIX: &str = "__devnet_global_";
/// Export name of table 0 (the indirect function table used by callbacks).
pub(crate) const TABLE_EXPORT: &str = "__devnet_table";

/// A module ready to compile, with what the devnet needs to know about it.
pub(crate) struct PreparedModule {
    /// The rewritten module bytes.
    pub bytes: Vec<u8>,
    /// Export names of the mutable globals, in index order.
    pub global_exports: Vec<String>,
    /// Whether the module has a table (exported as [`TABLE_EXPORT`]).
    pub has_table: bool,
}

fn read_leb_u32(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut result: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        result |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return u32::try_from(result).ok();
        }
        shift += 7;
        if shift > 35 {
            return None;
        }
    }
}

fn write_leb_u32(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn push_name(out: &mut Vec<u8>, name: &str) {
    write_leb_u32(out, name.len() as u32);
    out.extend_from_slice(name.as_bytes());
}

/// Checks imports against `implemented` and rewrites the export section.
pub(crate) fn prepare(wasm: &[u8], implemented: &[&str]) -> Result<PreparedModule, InstallError> {
    use wasmparser::{Parser, Payload, TypeRef};
    let invalid = |e: String| InstallError::InvalidModule(e);
    let mut imported_globals = 0u32;
    let mut imported_tables = 0u32;
    let mut mutable_globals = Vec::new();
    let mut defined_tables = 0u32;
    let mut export_count = None;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| invalid(e.to_string()))? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| invalid(e.to_string()))?;
                    match import.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => {
                            if import.module != "ic0" || !implemented.contains(&import.name) {
                                return Err(InstallError::UnsupportedImport(format!(
                                    "{}.{}",
                                    import.module, import.name
                                )));
                            }
                        }
                        TypeRef::Global(_) => imported_globals += 1,
                        TypeRef::Table(_) => imported_tables += 1,
                        _ => {
                            return Err(InstallError::UnsupportedImport(format!(
                                "{}.{}",
                                import.module, import.name
                            )));
                        }
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                for (i, g) in reader.into_iter().enumerate() {
                    let g = g.map_err(|e| invalid(e.to_string()))?;
                    if g.ty.mutable {
                        mutable_globals.push(imported_globals + i as u32);
                    }
                }
            }
            Payload::TableSection(reader) => defined_tables = reader.count(),
            Payload::ExportSection(reader) => export_count = Some(reader.count()),
            _ => {}
        }
    }
    if imported_globals > 0 || imported_tables > 0 {
        return Err(InstallError::UnsupportedImport(
            "imported globals or tables".to_string(),
        ));
    }
    let export_count =
        export_count.ok_or_else(|| invalid("module has no export section".to_string()))?;
    let has_table = defined_tables > 0;

    // New export entries appended to the existing ones.
    let mut extra = Vec::new();
    let mut global_exports = Vec::new();
    for idx in &mutable_globals {
        let name = format!("{GLOBAL_EXPORT_PREFIX}{idx}");
        push_name(&mut extra, &name);
        extra.push(0x03);
        write_leb_u32(&mut extra, *idx);
        global_exports.push(name);
    }
    if has_table {
        push_name(&mut extra, TABLE_EXPORT);
        extra.push(0x01);
        write_leb_u32(&mut extra, 0);
    }
    let added = global_exports.len() as u32 + u32::from(has_table);

    // Walk the top-level sections to find the export section's exact bytes.
    let mut pos = 8;
    let mut out = Vec::with_capacity(wasm.len() + extra.len() + 16);
    out.extend_from_slice(&wasm[..8]);
    while pos < wasm.len() {
        let start = pos;
        let id = wasm[pos];
        pos += 1;
        let size = read_leb_u32(wasm, &mut pos).ok_or_else(|| invalid("bad section".into()))?;
        let body_start = pos;
        let end = body_start + size as usize;
        if end > wasm.len() {
            return Err(invalid("section past end of module".into()));
        }
        if id == 7 {
            let mut p = body_start;
            read_leb_u32(wasm, &mut p).ok_or_else(|| invalid("bad export count".into()))?;
            let mut body = Vec::new();
            write_leb_u32(&mut body, export_count + added);
            body.extend_from_slice(&wasm[p..end]);
            body.extend_from_slice(&extra);
            out.push(7);
            write_leb_u32(&mut out, body.len() as u32);
            out.extend_from_slice(&body);
        } else {
            out.extend_from_slice(&wasm[start..end]);
        }
        pos = end;
    }
    Ok(PreparedModule {
        bytes: out,
        global_exports,
        has_table,
    })
}
