//! Canister metadata: the `icp:public <name>` and `icp:private <name>`
//! custom sections of installed modules (e.g. `candid:service`, which CLIs
//! read to encode arguments), served at `/canister/<id>/metadata/<name>` and
//! by the management canister's `canister_metadata`.
//!
//! The server records the sections of every module it sees installed, keyed
//! by module hash, once per module.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

/// One metadata section.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Section {
    /// Whether anyone may read it (`icp:public`) or only controllers.
    pub public: bool,
    /// Its content.
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
}

/// Metadata sections of the modules seen, by module hash.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ModuleMetadata {
    by_hash: HashMap<[u8; 32], BTreeMap<String, Section>>,
}

impl ModuleMetadata {
    /// Records the metadata sections of `wasm` (a module the devnet cannot
    /// parse records nothing; its installation fails anyway).
    pub fn record(&mut self, wasm: &[u8]) {
        let hash: [u8; 32] = Sha256::digest(wasm).into();
        if self.by_hash.contains_key(&hash) {
            return;
        }
        let sections = custom_sections(wasm)
            .into_iter()
            .filter_map(|(name, content)| {
                let (public, name) = if let Some(n) = name.strip_prefix("icp:public ") {
                    (true, n)
                } else {
                    (false, name.strip_prefix("icp:private ")?)
                };
                Some((
                    name.to_string(),
                    Section {
                        public,
                        content: content.to_vec(),
                    },
                ))
            })
            .collect();
        self.by_hash.insert(hash, sections);
    }

    /// The section `name` of the module with this hash, if recorded.
    pub fn get(&self, module_hash: &[u8; 32], name: &str) -> Option<&Section> {
        self.by_hash.get(module_hash)?.get(name)
    }
}

fn read_leb(bytes: &[u8], pos: &mut usize) -> Option<usize> {
    let mut result: u64 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        result |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return usize::try_from(result).ok();
        }
    }
    None
}

/// The custom sections (id 0) of a wasm module, by name; empty if the bytes
/// are not a wasm module.
pub fn custom_sections(wasm: &[u8]) -> Vec<(&str, &[u8])> {
    let mut out = Vec::new();
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return out;
    }
    let mut pos = 8;
    while pos < wasm.len() {
        let id = wasm[pos];
        pos += 1;
        let Some(size) = read_leb(wasm, &mut pos) else {
            break;
        };
        let Some(end) = pos.checked_add(size).filter(|&e| e <= wasm.len()) else {
            break;
        };
        if id == 0 {
            let mut p = pos;
            if let Some(name_len) = read_leb(wasm, &mut p)
                && let Some(name_end) = p.checked_add(name_len).filter(|&e| e <= end)
                && let Ok(name) = std::str::from_utf8(&wasm[p..name_end])
            {
                out.push((name, &wasm[name_end..end]));
            }
        }
        pos = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(name: &str, content: &[u8]) -> Vec<u8> {
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(content);
        let mut section = vec![0, body.len() as u8];
        section.extend(body);
        section
    }

    #[test]
    fn public_and_private_sections_are_recorded() {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend(custom("icp:public candid:service", b"service : {}"));
        wasm.extend(custom("icp:private secret", b"s"));
        wasm.extend(custom("name", b"ignored"));
        let mut meta = ModuleMetadata::default();
        meta.record(&wasm);
        let hash: [u8; 32] = Sha256::digest(&wasm).into();
        assert_eq!(
            meta.get(&hash, "candid:service"),
            Some(&Section {
                public: true,
                content: b"service : {}".to_vec()
            })
        );
        assert!(!meta.get(&hash, "secret").unwrap().public);
        assert_eq!(meta.get(&hash, "name"), None);
    }
}
