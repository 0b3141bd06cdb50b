//! `componentize IN.wasm OUT.wasm`: wraps a core module into a component,
//! as `wasm-tools component new` does, and validates the result.
//!
//! The module must carry the `component-type` custom sections that
//! wit-bindgen emits (the `wasip2` and `wstd` crates do), and import only
//! WASI 0.2 interfaces: a module built for `wasm32-unknown-unknown` does,
//! so no preview 1 adapter is involved.
//!
//! `componentize --world FILE.wasm` prints a component's imports and
//! exports, one per line, to check what a host will be asked to link.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [flag, file] if flag == "--world" => print_world(Path::new(file)),
        [input, output] if !input.starts_with('-') => {
            componentize(Path::new(input), Path::new(output))
        }
        _ => {
            eprintln!("usage: componentize IN.wasm OUT.wasm | componentize --world FILE.wasm");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("componentize: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Encodes the core module at `input` as a component at `output`. The file
/// is written only when the encoding validates, and rewritten only when its
/// bytes change (so a rebuild leaves the mtime of an unchanged output alone).
fn componentize(input: &Path, output: &Path) -> Result<()> {
    let module = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let component =
        encode(&module).with_context(|| format!("componentizing {}", input.display()))?;
    if std::fs::read(output).ok().as_deref() != Some(component.as_slice()) {
        std::fs::write(output, &component)
            .with_context(|| format!("writing {}", output.display()))?;
    }
    Ok(())
}

/// The validated component wrapping core module `module`.
fn encode(module: &[u8]) -> Result<Vec<u8>> {
    if wasm_is_component(module) {
        bail!("the input is already a component");
    }
    wit_component::ComponentEncoder::default()
        .module(module)
        .context("the module has no usable component-type metadata")?
        .validate(true)
        .encode()
}

/// Prints `import NAME` and `export NAME` lines for the component at `file`.
fn print_world(file: &Path) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    for line in world(&bytes).with_context(|| format!("decoding {}", file.display()))? {
        println!("{line}");
    }
    Ok(())
}

/// `import NAME` and `export NAME` for each item of a component's world,
/// imports first, in the component's order.
fn world(component: &[u8]) -> Result<Vec<String>> {
    let wit_component::DecodedWasm::Component(resolve, world) = wit_component::decode(component)?
    else {
        bail!("a WIT package, not a component");
    };
    let world = &resolve.worlds[world];
    let imports = world.imports.keys().map(|k| ("import", k));
    let exports = world.exports.keys().map(|k| ("export", k));
    Ok(imports
        .chain(exports)
        .map(|(dir, key)| format!("{dir} {}", resolve.name_world_key(key)))
        .collect())
}

/// Whether `bytes` start with a component's preamble rather than a core
/// module's (same magic, layer 1 instead of 0).
fn wasm_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit_component::StringEncoding;
    use wit_parser::{ManglingAndAbi, Resolve};

    /// A core module as wit-bindgen leaves it: imports and exports of
    /// `world`, and the world's type information in a custom section.
    fn module_for(wit: &str, world: &str) -> Vec<u8> {
        let mut resolve = Resolve::default();
        let package = resolve.push_str("test.wit", wit).expect("WIT parses");
        let world = resolve
            .select_world(&[package], Some(world))
            .expect("world");
        let mut module = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Standard32);
        wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
            .expect("embed metadata");
        module
    }

    const WIT: &str = "
        package test:relay@0.1.0;
        interface env { get: func(name: string) -> option<string>; }
        interface run { run: func() -> result; }
        world relay { import env; export run; }
    ";

    #[test]
    fn a_module_with_bindings_becomes_a_component_with_their_world() {
        let module = module_for(WIT, "relay");
        assert!(!wasm_is_component(&module));
        let component = encode(&module).expect("encodes");
        assert!(wasm_is_component(&component));
        assert_eq!(
            world(&component).expect("decodes"),
            ["import test:relay/env@0.1.0", "export test:relay/run@0.1.0"]
        );
    }

    #[test]
    fn a_component_or_a_module_without_bindings_is_refused() {
        let component = encode(&module_for(WIT, "relay")).expect("encodes");
        let err = encode(&component).expect_err("a component is refused");
        assert!(err.to_string().contains("already a component"), "{err:#}");
        let bare = wat::parse_str(r#"(module (import "env" "f" (func)))"#).expect("wat");
        let err = encode(&bare).expect_err("a module without metadata is refused");
        assert!(format!("{err:#}").contains("env"), "{err:#}");
    }
}
