//! The audit trail over [`PostgresStorage`].

use async_trait::async_trait;
use tessera_core::Timestamp;
use tessera_storage::{AuditEvent, EventFilter, EventRepository, Page, RepositoryError};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::columns::event_columns;
use crate::error::column;
use crate::PostgresStorage;

/// A whole batch as one statement (so one transaction and one round trip): one array per column,
/// unnested into rows. A duplicate id, stored or within the batch, fails all of it.
const INSERT: &str = concat!(
    "INSERT INTO events (",
    event_columns!(),
    ")
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                          $7::text[], $8::text[], $9::text[])"
);

/// Up to $2 events before $1, oldest first (a range of the `events_at` index); rows another
/// clean-up is deleting are skipped, not waited for.
const CLEANUP: &str = "DELETE FROM events WHERE id IN (
                           SELECT id FROM events WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Decodes an event from `row`, in the order of `event_columns!`.
fn decode_event(row: &Row) -> Result<AuditEvent, RepositoryError> {
    Ok(AuditEvent {
        id: column(row, 0)?,
        at: Timestamp(column(row, 1)?),
        kind: column(row, 2)?,
        actor: column(row, 3)?,
        user_id: column(row, 4)?,
        client_id: column(row, 5)?,
        grant_id: column(row, 6)?,
        session_id: column(row, 7)?,
        details: column(row, 8)?,
    })
}

/// The statement reading one page of `filter` (at most `limit` rows) and its parameters.
///
/// Each filter that is set, and the cursor, adds one condition of fixed text whose values are
/// bound, never spliced in; so each combination is its own prepared statement whose (generic)
/// plan uses the index that serves it (`events_user_id`, `events_client_id`, else `events_at`),
/// and an unset filter costs nothing. `id` is ordered and compared in byte order (`COLLATE "C"`,
/// like the indexes and SQLite), so the cursor is one range of the index, walked backwards.
fn page_query<'a>(filter: &'a EventFilter, page: &'a Page, limit: &'a i64) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
    let mut conditions = Vec::new();
    let mut params: Vec<&'a (dyn ToSql + Sync)> = Vec::new();
    let mut bind = |value: &'a (dyn ToSql + Sync)| {
        params.push(value);
        format!("${}", params.len())
    };
    if let Some(user_id) = &filter.user_id {
        conditions.push(format!("user_id = {}", bind(user_id)));
    }
    if let Some(client_id) = &filter.client_id {
        conditions.push(format!("client_id = {}", bind(client_id)));
    }
    if let Some(kind) = &filter.kind {
        conditions.push(format!("kind = {}", bind(kind)));
    }
    if let Some(since) = &filter.since {
        conditions.push(format!("at >= {}", bind(&since.0)));
    }
    if let Some(until) = &filter.until {
        conditions.push(format!("at < {}", bind(&until.0)));
    }
    if let Some((at, id)) = &page.before {
        let at = bind(&at.0);
        let id = bind(id);
        conditions.push(format!("(at, id COLLATE \"C\") < ({at}, {id})"));
    }
    let limit = bind(limit);
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        concat!(
            "SELECT ",
            event_columns!(),
            " FROM events{} ORDER BY at DESC, id COLLATE \"C\" DESC LIMIT {}"
        ),
        filter, limit
    );
    (sql, params)
}

#[async_trait]
impl EventRepository for PostgresStorage {
    #[tracing::instrument(name = "db.events.record", skip_all, fields(events = events.len()))]
    async fn record(&self, events: &[AuditEvent]) -> Result<(), RepositoryError> {
        if events.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let ats: Vec<i64> = events.iter().map(|e| e.at.0).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let actors: Vec<&str> = events.iter().map(|e| e.actor.as_str()).collect();
        let user_ids: Vec<Option<&str>> = events.iter().map(|e| e.user_id.as_deref()).collect();
        let client_ids: Vec<Option<&str>> = events.iter().map(|e| e.client_id.as_deref()).collect();
        let grant_ids: Vec<Option<&str>> = events.iter().map(|e| e.grant_id.as_deref()).collect();
        let session_ids: Vec<Option<&str>> = events.iter().map(|e| e.session_id.as_deref()).collect();
        let details: Vec<&str> = events.iter().map(|e| e.details.as_str()).collect();
        self.execute(
            INSERT,
            &[
                &ids,
                &ats,
                &kinds,
                &actors,
                &user_ids,
                &client_ids,
                &grant_ids,
                &session_ids,
                &details,
            ],
        )
        .await
        .map(|_| ())
    }

    #[tracing::instrument(name = "db.events.query", skip_all)]
    async fn query(&self, filter: &EventFilter, page: &Page) -> Result<Vec<AuditEvent>, RepositoryError> {
        let limit = i64::from(page.limit);
        let (sql, params) = page_query(filter, page, &limit);
        self.query(&sql, &params).await?.iter().map(decode_event).collect()
    }

    #[tracing::instrument(name = "db.events.cleanup_before", skip_all)]
    async fn cleanup_before(&self, cutoff: Timestamp, limit: u32) -> Result<u64, RepositoryError> {
        self.execute(CLEANUP, &[&cutoff.0, &i64::from(limit)]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_adds_one_bound_condition() {
        let limit = 5;
        let first = Page { before: None, limit: 5 };
        let unfiltered = EventFilter::default();
        let (sql, params) = page_query(&unfiltered, &first, &limit);
        assert!(
            sql.ends_with(" FROM events ORDER BY at DESC, id COLLATE \"C\" DESC LIMIT $1"),
            "{sql}"
        );
        assert_eq!(params.len(), 1);

        let filter = EventFilter {
            user_id: Some("u".into()),
            client_id: Some("c".into()),
            kind: Some("k".into()),
            since: Some(Timestamp(10)),
            until: Some(Timestamp(20)),
        };
        let next = Page {
            before: Some((Timestamp(15), "e".into())),
            limit: 3,
        };
        let (sql, params) = page_query(&filter, &next, &limit);
        assert!(
            sql.ends_with(
                " FROM events WHERE user_id = $1 AND client_id = $2 AND kind = $3 AND at >= $4 AND at < $5 \
                 AND (at, id COLLATE \"C\") < ($6, $7) ORDER BY at DESC, id COLLATE \"C\" DESC LIMIT $8"
            ),
            "{sql}"
        );
        assert_eq!(params.len(), 8);
    }
}
