//! The background checkpointer: copies the WAL back into the database file off the commit path.
//!
//! SQLite's automatic checkpoint runs on the writer thread right after the commit that pushed the
//! WAL past 1 000 pages: it copies every page written since the last one and fsyncs the database
//! file, and the writer's next batch waits for it. This thread runs `wal_checkpoint(PASSIVE)` on
//! its own connection every few milliseconds while writes arrive, so that by the time the writer's
//! own checkpoint comes due, almost everything has been copied and synced already, and the
//! writer's part is short. (The writer keeps its automatic checkpoint: a passive checkpoint on
//! another connection can fall behind a writer that never pauses, and only a complete checkpoint
//! lets the writer start the WAL again from its beginning.) A passive checkpoint never blocks the
//! writer or the readers.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tessera_storage::RepositoryError;

/// How long the checkpointer rests between checkpoints while the WAL grows.
const BUSY: Duration = Duration::from_millis(20);
/// The longest it rests while nothing is written.
const IDLE: Duration = Duration::from_secs(1);

/// The handle to the checkpointer thread; dropping it stops the thread.
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread, which owns `conn` (a read-write connection to the database) from now on.
    pub(crate) fn start(conn: Connection) -> Result<Self, RepositoryError> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tessera-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped))
            .map_err(|e| RepositoryError::Backend(Box::new(e)))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    let mut rest = BUSY;
    let mut last_frames = -1;
    loop {
        match stopped.recv_timeout(rest) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        // (busy, frames in the WAL, frames copied).
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(1));
        rest = match result {
            // The WAL changed since the last look: look again soon.
            Ok(frames) if frames != last_frames => {
                last_frames = frames;
                BUSY
            }
            // Quiet: rest longer and longer, so an idle server stays idle.
            Ok(_) => (rest * 2).min(IDLE),
            Err(error) => {
                tracing::warn!(%error, "SQLite background checkpoint failed; retrying");
                IDLE
            }
        };
    }
}
