//! What a function's `main` takes from an invocation or a command line: the Lambda deadline on
//! the run's clock, and the input of a local run (the JSON file named by the first argument).

use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::Value;
use tokio::time::Instant;

/// Why a local run's input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputFileError {
    #[error("reading {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{0} is not JSON")]
    NotJson(PathBuf, #[source] serde_json::Error),
}

/// The Lambda deadline as an instant of the run's clock.
pub fn deadline(at: SystemTime) -> Instant {
    let remaining = at.duration_since(SystemTime::now()).unwrap_or_default();
    Instant::now() + remaining
}

/// The JSON of the file the first command-line argument names; None without an argument.
pub fn argument_input() -> Result<Option<Value>, InputFileError> {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        return Ok(None);
    };
    let text = std::fs::read(&path).map_err(|e| InputFileError::Read(path.clone(), e))?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| InputFileError::NotJson(path, e))
}
