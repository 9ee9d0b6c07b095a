//! The audit trail over [`SqliteStorage`].

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Row};
use tessera_core::Timestamp;
use tessera_storage::{AuditEvent, EventFilter, EventRepository, Page, RepositoryError};

use crate::error::map_err;
use crate::SqliteStorage;

/// The `events` columns [`read_event`] reads, in order (a macro, so statements stay literals).
macro_rules! event_columns {
    () => {
        "id, at, kind, actor, user_id, client_id, grant_id, session_id, details"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO events (",
    event_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
);

/// Up to ?2 events before ?1, oldest first (a range of the `events_at` index).
const CLEANUP: &str = "DELETE FROM events WHERE rowid IN (
                           SELECT rowid FROM events WHERE at < ?1 ORDER BY at LIMIT ?2)";

fn read_event(row: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.get(0)?,
        at: Timestamp(row.get(1)?),
        kind: row.get(2)?,
        actor: row.get(3)?,
        user_id: row.get(4)?,
        client_id: row.get(5)?,
        grant_id: row.get(6)?,
        session_id: row.get(7)?,
        details: row.get(8)?,
    })
}

/// The statement reading one page of `filter` and its parameters.
///
/// Each filter that is set, and the cursor, adds one condition of fixed text whose values are
/// bound, never spliced in; so each combination is its own cached statement, planned for the index
/// that serves it (`events_user_id`, `events_client_id`, else `events_at`), and an unset filter
/// costs nothing. The cursor is a row-value comparison, so with the equality filters it is one
/// range of that index, walked backwards in (at, id) order.
fn page_query(filter: &EventFilter, page: &Page) -> (String, Vec<Value>) {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    let mut bind = |value: Value| {
        values.push(value);
        format!("?{}", values.len())
    };
    if let Some(user_id) = &filter.user_id {
        conditions.push(format!("user_id = {}", bind(Value::Text(user_id.clone()))));
    }
    if let Some(client_id) = &filter.client_id {
        conditions.push(format!("client_id = {}", bind(Value::Text(client_id.clone()))));
    }
    if let Some(kind) = &filter.kind {
        conditions.push(format!("kind = {}", bind(Value::Text(kind.clone()))));
    }
    if let Some(since) = filter.since {
        conditions.push(format!("at >= {}", bind(Value::Integer(since.0))));
    }
    if let Some(until) = filter.until {
        conditions.push(format!("at < {}", bind(Value::Integer(until.0))));
    }
    if let Some((at, id)) = &page.before {
        let at = bind(Value::Integer(at.0));
        let id = bind(Value::Text(id.clone()));
        conditions.push(format!("(at, id) < ({at}, {id})"));
    }
    let limit = bind(Value::Integer(i64::from(page.limit)));
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        concat!(
            "SELECT ",
            event_columns!(),
            " FROM events{} ORDER BY at DESC, id DESC LIMIT {}"
        ),
        filter, limit
    );
    (sql, values)
}

#[async_trait]
impl EventRepository for SqliteStorage {
    #[tracing::instrument(name = "db.events.record", skip_all, fields(events = events.len()))]
    async fn record(&self, events: &[AuditEvent]) -> Result<(), RepositoryError> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        // One write command, so one savepoint: a duplicate id rolls back the whole batch.
        self.write(move |conn| {
            let mut insert = conn.prepare_cached(INSERT).map_err(map_err)?;
            for event in &events {
                insert
                    .execute(params![
                        event.id,
                        event.at.0,
                        event.kind,
                        event.actor,
                        event.user_id,
                        event.client_id,
                        event.grant_id,
                        event.session_id,
                        event.details,
                    ])
                    .map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    #[tracing::instrument(name = "db.events.query", skip_all)]
    async fn query(&self, filter: &EventFilter, page: &Page) -> Result<Vec<AuditEvent>, RepositoryError> {
        let (sql, values) = page_query(filter, page);
        self.read_blocking(move |conn| {
            conn.prepare_cached(&sql)?
                .query_map(params_from_iter(values), read_event)?
                .collect()
        })
        .await
    }

    #[tracing::instrument(name = "db.events.cleanup_before", skip_all)]
    async fn cleanup_before(&self, cutoff: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        self.write_sql(move |conn| {
            conn.prepare_cached(CLEANUP)?
                .execute(params![cutoff.0, limit])
                .map(|deleted| deleted as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_adds_one_bound_condition() {
        let (sql, values) = page_query(&EventFilter::default(), &Page { before: None, limit: 5 });
        assert!(
            sql.ends_with(" FROM events ORDER BY at DESC, id DESC LIMIT ?1"),
            "{sql}"
        );
        assert_eq!(values, vec![Value::Integer(5)]);

        let filter = EventFilter {
            user_id: Some("u".into()),
            client_id: Some("c".into()),
            kind: Some("k".into()),
            since: Some(Timestamp(10)),
            until: Some(Timestamp(20)),
        };
        let page = Page {
            before: Some((Timestamp(15), "e".into())),
            limit: 3,
        };
        let (sql, values) = page_query(&filter, &page);
        assert!(
            sql.ends_with(
                " FROM events WHERE user_id = ?1 AND client_id = ?2 AND kind = ?3 AND at >= ?4 AND at < ?5 \
                 AND (at, id) < (?6, ?7) ORDER BY at DESC, id DESC LIMIT ?8"
            ),
            "{sql}"
        );
        assert_eq!(
            values,
            vec![
                Value::Text("u".into()),
                Value::Text("c".into()),
                Value::Text("k".into()),
                Value::Integer(10),
                Value::Integer(20),
                Value::Integer(15),
                Value::Text("e".into()),
                Value::Integer(3),
            ]
        );
    }
}
