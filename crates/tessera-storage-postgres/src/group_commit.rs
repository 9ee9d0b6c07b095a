//! Group commit of refresh-token rotations (DESIGN §7): many rotations, one transaction, one
//! round trip, one WAL flush.
//!
//! A rotation alone is one statement ([`crate::refresh`]'s `ROTATE`), autocommit: a round trip
//! and a commit (a WAL flush, and the wake-ups of both processes) each. Under load those per-commit
//! costs were most of what PostgreSQL spent on a refresh besides executing it. So rotations queue
//! here, and a collector takes whatever has queued as one batch: `BEGIN`, each rotation's
//! statement, `COMMIT`, all written to one pooled connection before reading any answer (the
//! driver pipelines them), and each caller gets its answer once the `COMMIT` has been
//! acknowledged. At most [`IN_FLIGHT`] batches run at once; while they do, the next batch
//! gathers, so the busier the server, the larger the batches, and an idle server sends a lone
//! rotation on its own at once (no added wait).
//!
//! **Semantics are those of the rotations run one by one.** Each statement runs under READ
//! COMMITTED with its own snapshot, which sees the batch's earlier statements: a second rotation
//! of the same token in the same batch finds the first one's `use_count` and changes nothing,
//! exactly as it would after the first had committed. The row locks a statement takes are held
//! until the batch commits instead of until the statement does; rotations are ordered by grant
//! in a batch, so batches take grant locks in one global order.
//!
//! **Failures.** If any statement fails, PostgreSQL aborts the transaction, the pipelined
//! `COMMIT` rolls it back, and nothing of the batch is kept; its rotations are then run again
//! one by one (so one bad rotation, or a deadlock with another transaction, fails alone). A lost
//! connection, or a failed `COMMIT`, is reported to every caller of the batch, as it would have
//! been to a lone rotation: whether it committed is unknown (503 to the client).

use std::sync::Arc;

use deadpool_postgres::Pool;
use futures::future::{join3, join_all};
use tessera_storage::{RepositoryError, Rotation, SharedFailure};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::Instrument as _;

use crate::error::{column, map_pg, map_pool};
use crate::refresh::RotateValues;

/// Batches committing at once, each on its own pooled connection.
const IN_FLIGHT: usize = 4;
/// The most rotations in one batch.
const MAX_BATCH: usize = 64;

/// A rotation waiting for its batch.
struct Queued {
    rotation: Rotation,
    reply: oneshot::Sender<Result<bool, RepositoryError>>,
}

/// The handle to the collector task; the task ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Rotations {
    sender: mpsc::Sender<Queued>,
}

impl Rotations {
    /// Starts the collector on the current tokio runtime.
    pub(crate) fn start(pool: Pool) -> Self {
        let (sender, receiver) = mpsc::channel(MAX_BATCH * IN_FLIGHT * 4);
        tokio::spawn(collect(pool, receiver));
        Self { sender }
    }

    /// Runs `rotation` in the next batch; returns once that batch has committed (or failed).
    pub(crate) async fn rotate(&self, rotation: Rotation) -> Result<bool, RepositoryError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Queued { rotation, reply })
            .await
            .map_err(|_| collector_gone())?;
        answer.await.map_err(|_| collector_gone())?
    }
}

fn collector_gone() -> RepositoryError {
    RepositoryError::Unavailable("the PostgreSQL rotation collector has stopped".into())
}

/// Takes a batch whenever a batch slot is free: the first rotation waiting and every other one
/// queued behind it.
async fn collect(pool: Pool, mut receiver: mpsc::Receiver<Queued>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = receiver.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            commit(&pool, batch).await;
            drop(slot);
        });
    }
}

/// Commits `batch` and answers each caller.
async fn commit(pool: &Pool, mut batch: Vec<Queued>) {
    if batch.len() > 1 {
        batch.sort_by(|a, b| a.rotation.new_token.grant_id.cmp(&b.rotation.new_token.grant_id));
        let span = tracing::debug_span!("db.refresh_tokens.rotate_batch", rotations = batch.len());
        match together(pool, &batch).instrument(span).await {
            Outcome::Committed(results) => {
                for (queued, result) in batch.into_iter().zip(results) {
                    let _ = queued.reply.send(Ok(result));
                }
                return;
            }
            Outcome::RolledBack(error) => {
                tracing::debug!(%error, rotations = batch.len(), "rotation batch rolled back; running its rotations one by one");
            }
            Outcome::Unknown(failure) => {
                for queued in batch {
                    let _ = queued.reply.send(Err(failure.to_error()));
                }
                return;
            }
        }
    }
    for queued in batch {
        let result = alone(pool, &queued.rotation).await;
        let _ = queued.reply.send(result);
    }
}

/// What became of a batch.
enum Outcome {
    /// Committed; whether each rotation happened, in batch order.
    Committed(Vec<bool>),
    /// A statement failed, so nothing was kept: run the rotations again one by one.
    RolledBack(tokio_postgres::Error),
    /// The connection failed or `COMMIT` did: the batch may or may not have committed.
    Unknown(SharedFailure),
}

impl Outcome {
    fn unknown(error: RepositoryError) -> Self {
        Self::Unknown(SharedFailure::new("rotation batch", &error))
    }
}

/// `BEGIN`, every rotation's statement and `COMMIT`, pipelined on one connection.
async fn together(pool: &Pool, batch: &[Queued]) -> Outcome {
    let client = match pool.get().await {
        Ok(client) => client,
        Err(error) => return Outcome::unknown(map_pool(error)),
    };
    let values = match batch
        .iter()
        .map(|queued| RotateValues::of(&queued.rotation))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(values) => values,
        Err(error) => return Outcome::unknown(error),
    };
    // Prepared before the transaction (a round trip each, once per connection).
    let mut statements = Vec::with_capacity(values.len());
    for value in &values {
        match client.prepare_cached(value.statement()).await {
            Ok(statement) => statements.push(statement),
            Err(error) => return Outcome::unknown(map_pg(error)),
        }
    }
    let params: Vec<_> = values.iter().map(RotateValues::params).collect();
    let begin = client.batch_execute("BEGIN");
    let rotations = join_all(
        statements
            .iter()
            .zip(&params)
            .map(|(statement, params)| client.query_one(statement, params)),
    );
    // In an aborted transaction PostgreSQL answers COMMIT with a rollback, not an error.
    let end = client.batch_execute("COMMIT");
    // `join3` and `join_all` poll in order, so the requests go out in this order.
    let (begun, rows, ended) = join3(begin, rotations, end).await;
    if let Err(error) = begun {
        return Outcome::unknown(map_pg(error));
    }
    let mut results = Vec::with_capacity(rows.len());
    let mut failed = None;
    for row in rows {
        match row {
            Ok(row) => match column::<bool>(&row, 0) {
                Ok(rotated) => results.push(rotated),
                Err(error) => return Outcome::unknown(error),
            },
            Err(error) => {
                failed.get_or_insert(error);
            }
        }
    }
    match (failed, ended) {
        // A statement failed: PostgreSQL refused the rest and rolled the transaction back.
        (Some(error), _) if error.as_db_error().is_some() => Outcome::RolledBack(error),
        (Some(error), _) | (None, Err(error)) => Outcome::unknown(map_pg(error)),
        (None, Ok(())) => Outcome::Committed(results),
    }
}

/// One rotation in its own statement (autocommit).
async fn alone(pool: &Pool, rotation: &Rotation) -> Result<bool, RepositoryError> {
    let values = RotateValues::of(rotation)?;
    let client = pool.get().await.map_err(map_pool)?;
    let statement = client.prepare_cached(values.statement()).await.map_err(map_pg)?;
    let row = client.query_one(&statement, &values.params()).await.map_err(map_pg)?;
    column(&row, 0)
}
