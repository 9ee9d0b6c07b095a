-- Tessera schema v6 (SQLite): the audit trail (DESIGN §5 `events`), and paging through a client's
-- grants. No foreign keys: an event outlives the user, client, grant or session it names, until
-- the retention clean-up deletes it. Timestamps are INTEGER seconds; `details` is a JSON object as
-- TEXT. Pages are newest first by (at, id) (keyset pagination), so each index ends in (at, id).

-- kind: the event type (e.g. 'login.succeeded'); actor: 'user', 'client', 'admin', 'policy' or 'system'.
CREATE TABLE events (
    id         TEXT    NOT NULL PRIMARY KEY,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    user_id    TEXT,
    client_id  TEXT,
    grant_id   TEXT,
    session_id TEXT,
    details    TEXT    NOT NULL
);
-- Pages of all events or of a time range (a kind alone is filtered along it), and the clean-up.
CREATE INDEX events_at ON events (at, id);
-- Pages of one user's, or one client's, events.
CREATE INDEX events_user_id ON events (user_id, at, id);
CREATE INDEX events_client_id ON events (client_id, at, id);

-- Pages of one client's grants, newest first (GrantRepository::list_by_client).
CREATE INDEX grants_client_id ON grants (client_id, created_at, id);
