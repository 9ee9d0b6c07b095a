//! `--record-tokens`: every refresh token the chains saw, as lines in a file, for tests that check
//! afterwards what the server did with each of them.
//!
//! Each worker buffers its own lines and appends them to the shared file in whole lines, when its
//! buffer fills, when [`FLUSH_INTERVAL`] has passed since its last write, before it pauses after a
//! failed set-up, and when it ends; so a run that is stopped still leaves all but its last moments.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::report::Failure;
use crate::Error;

/// How long a worker keeps lines before writing them out.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How many bytes a worker keeps before writing them out.
const FLUSH_BYTES: usize = 8 * 1024;

/// The file every worker appends to.
pub(crate) struct TokenFile {
    path: PathBuf,
    sink: Mutex<Sink>,
}

struct Sink {
    file: File,
    /// The first write that failed: the run reports it at the end.
    error: Option<std::io::Error>,
}

impl TokenFile {
    /// Creates the file, or empties it.
    pub(crate) fn create(path: &Path) -> Result<Arc<Self>, Error> {
        let file = File::create(path).map_err(|e| Error::Record(path.display().to_string(), e))?;
        Ok(Arc::new(Self {
            path: path.to_owned(),
            sink: Mutex::new(Sink { file, error: None }),
        }))
    }

    /// The first write that failed, if any.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        match sink.error.take() {
            Some(error) => Err(Error::Record(self.path.display().to_string(), error)),
            None => Ok(()),
        }
    }

    fn append(&self, lines: &str) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        if sink.error.is_none() {
            if let Err(error) = sink.file.write_all(lines.as_bytes()) {
                sink.error = Some(error);
            }
        }
    }
}

/// One worker's lines, not yet written.
pub(crate) struct TokenLog {
    worker: usize,
    file: Arc<TokenFile>,
    buffer: String,
    written: Instant,
}

impl TokenLog {
    pub(crate) fn new(worker: usize, file: Arc<TokenFile>) -> Self {
        Self {
            worker,
            file,
            buffer: String::with_capacity(FLUSH_BYTES + 512),
            written: Instant::now(),
        }
    }

    /// The password grant answered with `token`: a new chain starts.
    pub(crate) fn granted(&mut self, token: &str) {
        self.line("granted", token, "");
    }

    /// What presenting `token` in a refresh came to: a new token, or a failure.
    pub(crate) fn refreshed(&mut self, token: &str, result: &Result<String, Failure>) {
        match result {
            Ok(new) => self.line("received", new, ""),
            Err(failure) if failure.is_lost() => self.line("lost", token, &failure.outcome.key()),
            Err(failure) => self.line("refused", token, &failure.outcome.key()),
        }
    }

    fn line(&mut self, kind: &str, token: &str, detail: &str) {
        let separator = if detail.is_empty() { "" } else { " " };
        // Writing to a String cannot fail.
        let _ = writeln!(self.buffer, "{} {kind} {token}{separator}{detail}", self.worker);
        if self.buffer.len() >= FLUSH_BYTES || self.written.elapsed() >= FLUSH_INTERVAL {
            self.flush();
        }
    }

    /// Writes out the buffered lines.
    pub(crate) fn flush(&mut self) {
        if !self.buffer.is_empty() {
            self.file.append(&self.buffer);
            self.buffer.clear();
        }
        self.written = Instant::now();
    }
}

impl Drop for TokenLog {
    fn drop(&mut self) {
        self.flush();
    }
}
