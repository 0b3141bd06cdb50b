//! Errors of the sandbox's own setup. What happens to a job is never an
//! error: it is an [`Outcome`](super::Outcome).

/// Why the sandbox itself could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The node's sandbox settings are inconsistent.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// wasmtime refused the engine configuration.
    #[error("cannot build the wasmtime engine: {0}")]
    Engine(String),
    /// The WASI linker could not be set up.
    #[error("cannot link WASI: {0}")]
    Linker(String),
    /// The on-disk module cache could not be opened.
    #[error("module cache at {path}: {source}")]
    Cache {
        /// The cache directory or file.
        path: std::path::PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The job runtime (its worker threads) could not be started.
    #[error("cannot start the job runtime: {0}")]
    Runtime(std::io::Error),
}
