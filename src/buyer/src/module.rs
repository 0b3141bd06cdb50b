//! Getting a module into the matcher's store: only when it is not there yet.

use market_api::matcher::{MAX_CHUNK_BYTES, MAX_MODULE_BYTES, MatcherError, Sha256};
use sha2::Digest;

use super::{BuyerError, Console, with_retries};
use market_client::client::{ClientError, MarketClient};
use market_client::transport::Transport;

/// A module in the matcher's store, and whether this call uploaded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleUpload {
    /// Its sha256, the name jobs refer to it by.
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// Chunks sent by this call (0 when it was already stored).
    pub chunks_sent: u32,
}

impl ModuleUpload {
    /// Whether this call uploaded it (false: it was already stored).
    pub fn uploaded(&self) -> bool {
        self.chunks_sent > 0
    }
}

/// The sha256 of `bytes`.
pub fn sha256_of(bytes: &[u8]) -> Sha256 {
    sha2::Sha256::digest(bytes).into()
}

fn size_text(bytes: u64) -> String {
    if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Makes sure `wasm` is committed in the matcher's store: nothing is sent
/// when `module_info_of` finds it committed; otherwise the upload is begun
/// (or resumed: beginning again is a no-op for the same uploader), every
/// chunk of at most [`MAX_CHUNK_BYTES`] is put, and the matcher checks the
/// sha256 on commit.
pub async fn ensure_module<T: Transport>(
    client: &MarketClient<T>,
    wasm: &[u8],
    console: &mut Console,
) -> Result<ModuleUpload, BuyerError> {
    if !wasm.starts_with(b"\0asm") {
        return Err(BuyerError::Request(
            "the module is not a WebAssembly binary (no \\0asm header); compile it for \
             wasm32-wasip1 first"
                .into(),
        ));
    }
    if wasm.len() > MAX_MODULE_BYTES {
        return Err(BuyerError::Request(format!(
            "the module has {} bytes; the matcher stores at most {MAX_MODULE_BYTES}",
            wasm.len()
        )));
    }
    let sha256 = sha256_of(wasm);
    let size = wasm.len() as u64;
    let short = hex::encode(&sha256[..6]);
    let info = with_retries(|| client.module_info(sha256)).await?;
    if info.as_ref().is_some_and(|i| i.committed) {
        console.line(format!(
            "module {short}… ({}) is already in the matcher's store; not uploading",
            size_text(size)
        ));
        return Ok(ModuleUpload {
            sha256,
            size,
            chunks_sent: 0,
        });
    }
    let upload = market_api::matcher::ModuleUpload { sha256, size };
    match with_retries(|| client.begin_module_upload(upload.clone())).await {
        Ok(_) => {}
        Err(ClientError::Matcher(MatcherError::Unauthorized { .. })) => {
            return Err(BuyerError::UploadNeedsDeposit);
        }
        Err(e) => return Err(e.into()),
    }
    let chunks: Vec<&[u8]> = wasm.chunks(MAX_CHUNK_BYTES).collect();
    let total = chunks.len() as u32;
    console.line(format!(
        "uploading module {short}… ({}, {total} chunk{})",
        size_text(size),
        if total == 1 { "" } else { "s" }
    ));
    let mut sent: u64 = 0;
    for (index, chunk) in chunks.into_iter().enumerate() {
        let index = index as u32;
        console.live(format!(
            "  chunk {}/{total}  {} of {}",
            index + 1,
            size_text(sent),
            size_text(size)
        ));
        with_retries(|| client.put_module_chunk(sha256, index, chunk.to_vec())).await?;
        sent += chunk.len() as u64;
    }
    let info = with_retries(|| client.commit_module(sha256)).await?;
    if !info.committed || info.size != size {
        return Err(BuyerError::UploadMismatch(format!(
            "committed {}, {} bytes",
            info.committed, info.size
        )));
    }
    console.line(format!("uploaded module {short}… ({total}/{total} chunks)"));
    Ok(ModuleUpload {
        sha256,
        size,
        chunks_sent: total,
    })
}
