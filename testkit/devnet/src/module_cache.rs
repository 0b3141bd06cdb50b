//! Compiled canister modules kept on disk, so that each test process does
//! not compile the same canisters again: compiling the market's four
//! canisters takes some fifteen seconds, loading them from here a fraction
//! of one.
//!
//! The directory is `$DEVNET_MODULE_CACHE` (`off` keeps nothing), by default
//! `target/devnet-modules/` of this repository. A file is named by the
//! SHA-256 of the module as the devnet rewrites it and by a tag of the
//! engine's compatibility (wasmtime's version and configuration), so a
//! changed module, a changed rewrite or a wasmtime upgrade simply misses.
//! Files are written whole under a temporary name and then renamed, so a
//! reader never sees half of one; a file wasmtime refuses is deleted and the
//! module compiled again. The newest [`KEEP`] files are kept.
//!
//! Loading runs the file's machine code: the directory must be writable
//! only by whoever runs the tests, as the target directory is.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// Files kept: every canister and test canister of the repository with room
/// for a few rebuilds.
const KEEP: usize = 48;

/// The cache's directory, or `None` when it is turned off.
fn dir() -> Option<PathBuf> {
    match std::env::var_os("DEVNET_MODULE_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/devnet-modules")),
    }
}

/// The file `bytes` compiled by `engine` is kept in.
fn file(dir: &Path, engine: &Engine, bytes: &[u8]) -> PathBuf {
    let mut engine_tag = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_tag);
    let module: [u8; 32] = Sha256::digest(bytes).into();
    dir.join(format!(
        "{}-{:016x}.cwasm",
        crate::hex(&module),
        engine_tag.finish()
    ))
}

/// `bytes` compiled: from the cache if it holds them, otherwise compiled
/// and stored there (a failure to store only costs the next process a
/// compile).
pub(crate) fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Module> {
    match dir() {
        Some(dir) => compile_in(&dir, engine, bytes),
        None => Module::new(engine, bytes),
    }
}

/// [`compile`] with the cache in `dir`.
fn compile_in(dir: &Path, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Module> {
    let path = file(dir, engine, bytes);
    if path.exists() {
        // SAFETY: the file was written by `store` below from
        // `Module::serialize` (the module docs say who may write here);
        // wasmtime checks that it was compiled for a compatible engine.
        match unsafe { Module::deserialize_file(engine, &path) } {
            Ok(module) => {
                if let Ok(f) = fs::File::options().write(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                return Ok(module);
            }
            Err(_) => {
                let _ = fs::remove_file(&path);
            }
        }
    }
    let module = Module::new(engine, bytes)?;
    if let Ok(serialized) = module.serialize() {
        let _ = store(dir, &path, &serialized);
    }
    Ok(module)
}

fn store(dir: &Path, path: &Path, serialized: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    fs::write(&partial, serialized)?;
    fs::rename(&partial, path)?;
    prune(dir)
}

/// Deletes all but the [`KEEP`] most recently used files.
fn prune(dir: &Path) -> std::io::Result<()> {
    let mut files: Vec<(SystemTime, PathBuf)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    if files.len() > KEEP {
        files.sort();
        for (_, p) in &files[..files.len() - KEEP] {
            let _ = fs::remove_file(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(module (func (export "f") (result i32) i32.const 7))"#;

    /// A fresh cache directory named `name`, an engine, the module `WAT`
    /// and the file the cache keeps it in.
    fn setup(name: &str) -> (PathBuf, Engine, Vec<u8>, PathBuf) {
        let dir = temp_dir(name);
        let engine = Engine::new(wasmtime::Config::new().consume_fuel(true)).unwrap();
        let bytes = wat::parse_str(WAT).unwrap();
        let path = file(&dir, &engine, &bytes);
        (dir, engine, bytes, path)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("devnet-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_compiled_module_is_stored_and_loaded_by_the_next_compile() {
        let (dir, engine, bytes, path) = setup("modules-store");
        assert!(!path.exists());
        let compiled = compile_in(&dir, &engine, &bytes).unwrap();
        assert_eq!(fs::read(&path).unwrap(), compiled.serialize().unwrap());
        // The file under that name now holds another module: a compile that
        // loads rather than compiles again gets that one.
        let other = wat::parse_str(r#"(module (func (export "g")))"#).unwrap();
        let stored = Module::new(&engine, &other).unwrap().serialize().unwrap();
        fs::write(&path, &stored).unwrap();
        let loaded = compile_in(&dir, &engine, &bytes).unwrap();
        assert!(loaded.get_export("g").is_some() && loaded.get_export("f").is_none());
        assert_eq!(
            loaded.serialize().unwrap(),
            stored,
            "the stored module itself"
        );
        // Another module or another engine configuration names another file.
        assert_ne!(file(&dir, &engine, &other), path);
        assert_ne!(file(&dir, &Engine::default(), &bytes), path);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_wasmtime_refuses_is_replaced_by_a_fresh_compile() {
        let (dir, engine, bytes, path) = setup("modules-corrupt");
        fs::create_dir_all(&dir).unwrap();
        fs::write(&path, b"not a compiled module").unwrap();
        let module = compile_in(&dir, &engine, &bytes).unwrap();
        assert!(module.get_export("f").is_some());
        assert_eq!(fs::read(&path).unwrap(), module.serialize().unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_the_newest_files_are_kept() {
        let dir = temp_dir("modules-prune");
        fs::create_dir_all(&dir).unwrap();
        let old = SystemTime::UNIX_EPOCH;
        for i in 0..KEEP + 3 {
            let p = dir.join(format!("{i:03}.cwasm"));
            fs::write(&p, b"x").unwrap();
            let when = old + std::time::Duration::from_secs(i as u64 * 60);
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        prune(&dir).unwrap();
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), KEEP);
        assert_eq!(left[0], "003.cwasm", "the three oldest went");
        fs::remove_dir_all(&dir).unwrap();
    }
}
