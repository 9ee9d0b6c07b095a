//! The single writer thread and its group commit (DESIGN §7).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::Connection;
use tessera_storage::{RepositoryError, SharedFailure};
use tokio::sync::{mpsc, oneshot};

use crate::error::{map_err, unavailable};

/// A write operation: runs on the writer's connection inside its own savepoint.
pub(crate) type WriteOp<T> = Box<dyn FnOnce(&Connection) -> Result<T, RepositoryError> + Send>;

/// A queued command, type-erased so commands of every result type share one channel.
trait Command: Send {
    /// Runs the operation inside `SAVEPOINT command`, rolling back to it if the operation fails.
    /// An `Err` means the savepoint machinery itself failed and the whole transaction is lost.
    fn execute(&mut self, conn: &Connection) -> rusqlite::Result<()>;
    /// Replies to the caller once the batch's fate is known.
    fn complete(self: Box<Self>, batch: Result<(), &SharedFailure>);
}

struct Job<T> {
    op: Option<WriteOp<T>>,
    result: Option<Result<T, RepositoryError>>,
    reply: oneshot::Sender<Result<T, RepositoryError>>,
}

impl<T: Send> Command for Job<T> {
    fn execute(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let Some(op) = self.op.take() else {
            return Ok(());
        };
        exec(conn, "SAVEPOINT command")?;
        // A panicking operation (a caller's closure, such as a refresh planner) fails alone and
        // is undone; it must not take the one writer thread down with it.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(conn)))
            .unwrap_or_else(|_| Err(RepositoryError::Backend("a write command panicked".into())));
        if result.is_ok() {
            exec(conn, "RELEASE command")?;
        } else {
            exec(conn, "ROLLBACK TO command")?;
            exec(conn, "RELEASE command")?;
        }
        self.result = Some(result);
        Ok(())
    }

    fn complete(self: Box<Self>, batch: Result<(), &SharedFailure>) {
        let reply = match (self.result, batch) {
            // A failed operation changed nothing, whatever became of the batch.
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(failure)) => Err(failure.to_error()),
            (None, Ok(())) => Err(RepositoryError::Backend(
                "write command was committed without running".into(),
            )),
        };
        // The caller may have gone away (cancelled request); the write stands regardless.
        let _ = self.reply.send(reply);
    }
}

/// Why a whole batch failed.
fn batch_failure(error: rusqlite::Error) -> SharedFailure {
    SharedFailure::new("group commit failed", &map_err(error))
}

/// Counters of the writer's work, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Transactions (and so fsyncs) the writer has committed or attempted.
    pub transactions: u64,
    /// Write commands it has run.
    pub commands: u64,
}

#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    commands: AtomicU64,
}

/// The handle to the writer thread. Dropping it closes the channel and waits for the thread to
/// finish the batch in hand and close its connection.
pub(crate) struct Writer {
    sender: Option<mpsc::Sender<Box<dyn Command>>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer thread, which owns `conn` from now on.
    pub(crate) fn start(conn: Connection, max_batch: usize) -> Result<Self, RepositoryError> {
        let max_batch = max_batch.max(1);
        let (sender, receiver) = mpsc::channel(max_batch.saturating_mul(4));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || run(&conn, receiver, max_batch, &thread_counters))
            .map_err(|e| RepositoryError::Backend(Box::new(e)))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
            counters,
        })
    }

    /// Queues `op` and waits until the transaction that ran it has committed.
    pub(crate) async fn submit<T: Send + 'static>(&self, op: WriteOp<T>) -> Result<T, RepositoryError> {
        let sender = self.sender.as_ref().ok_or_else(writer_gone)?;
        let (reply, response) = oneshot::channel();
        let job: Box<dyn Command> = Box::new(Job {
            op: Some(op),
            result: None,
            reply,
        });
        sender.send(job).await.map_err(|_| writer_gone())?;
        response.await.map_err(|_| writer_gone())?
    }

    /// Whether the thread is still taking commands.
    pub(crate) fn is_alive(&self) -> bool {
        self.sender.as_ref().is_some_and(|s| !s.is_closed())
    }

    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            // Bounded by one batch: the channel is closed, so the thread exits after it.
            let _ = thread.join();
        }
    }
}

fn writer_gone() -> RepositoryError {
    unavailable("the SQLite writer thread has stopped")
}

/// The writer loop: take one command, drain what else is queued (up to `max_batch` in all), run
/// them in one transaction, commit once, then reply to each.
fn run(conn: &Connection, mut receiver: mpsc::Receiver<Box<dyn Command>>, max_batch: usize, counters: &Counters) {
    let mut batch: Vec<Box<dyn Command>> = Vec::with_capacity(max_batch);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let span = tracing::debug_span!("db.sqlite.group_commit", commands = batch.len());
        let outcome = span.in_scope(|| run_batch(conn, &mut batch));
        if let Err(failure) = &outcome {
            tracing::warn!(error = %failure.message(), commands = batch.len(), "SQLite batch failed");
        }
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        counters.commands.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for command in batch.drain(..) {
            command.complete(outcome.as_ref().map(|_| ()));
        }
    }
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Command>]) -> Result<(), SharedFailure> {
    exec(conn, "BEGIN IMMEDIATE").map_err(batch_failure)?;
    let result = batch
        .iter_mut()
        .try_for_each(|command| command.execute(conn))
        .and_then(|()| exec(conn, "COMMIT"));
    result.map_err(|error| {
        // Some errors (I/O, full disk) have already rolled the transaction back.
        if !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
        batch_failure(error)
    })
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
