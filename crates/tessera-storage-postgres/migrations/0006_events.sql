-- Tessera schema v6 (PostgreSQL): the audit trail (DESIGN §5 `events`), and paging through a
-- client's grants. No foreign keys: an event outlives the user, client, grant or session it names,
-- until the retention clean-up deletes it. Timestamps are BIGINT seconds; `details` is a JSON
-- object as TEXT (decoded by Tessera, never queried by SQL). Pages are newest first by (at, id)
-- (keyset pagination), so each index ends in (at, id), with `id` in byte order (COLLATE "C", as
-- the queries order and compare it, like SQLite's BINARY) whatever the database's collation.

-- kind: the event type (e.g. 'login.succeeded'); actor: 'user', 'client', 'admin', 'policy' or 'system'.
CREATE TABLE events (
    id         TEXT   NOT NULL PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    user_id    TEXT,
    client_id  TEXT,
    grant_id   TEXT,
    session_id TEXT,
    details    TEXT   NOT NULL
);
-- Pages of all events or of a time range (a kind alone is filtered along it), and the clean-up.
CREATE INDEX events_at ON events (at, id COLLATE "C");
-- Pages of one user's, or one client's, events.
CREATE INDEX events_user_id ON events (user_id, at, id COLLATE "C");
CREATE INDEX events_client_id ON events (client_id, at, id COLLATE "C");

-- Pages of one client's grants, newest first (GrantRepository::list_by_client).
CREATE INDEX grants_client_id ON grants (client_id, created_at, id COLLATE "C");
