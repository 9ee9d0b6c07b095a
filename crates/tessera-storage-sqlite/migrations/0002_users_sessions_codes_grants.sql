-- Tessera schema v2 (SQLite): local users, SSO sessions, remembered consent, authorization codes
-- and grants. No foreign keys between these tables (or to clients): each row is deleted on its
-- own schedule (cleanup jobs, admin removal), and the application decides what a dangling
-- reference means. Timestamps are INTEGER seconds; hashes 32-byte BLOBs; JSON documents TEXT.

CREATE TABLE users (
    id                  TEXT    NOT NULL PRIMARY KEY,
    username            TEXT    NOT NULL UNIQUE,
    password_hash       TEXT,
    claims              TEXT    NOT NULL,
    is_disabled         INTEGER NOT NULL DEFAULT 0,
    password_changed_at INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

CREATE TABLE sso_sessions (
    id             TEXT    NOT NULL PRIMARY KEY,
    token_hash     BLOB    NOT NULL UNIQUE,
    user_id        TEXT    NOT NULL,
    auth_time      INTEGER NOT NULL,
    amr            TEXT    NOT NULL,
    acr            TEXT,
    last_active_at INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    ended_at       INTEGER
);
CREATE INDEX sso_sessions_user_id ON sso_sessions (user_id);

-- scopes: a JSON array of distinct scope tokens.
CREATE TABLE consents (
    user_id    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE authorization_codes (
    hash                  BLOB    NOT NULL PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    user_id               TEXT    NOT NULL,
    session_id            TEXT    NOT NULL,
    grant_id              TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL,
    scope                 TEXT    NOT NULL,
    nonce                 TEXT,
    code_challenge        TEXT,
    code_challenge_method TEXT,
    audience              TEXT    NOT NULL,
    auth_time             INTEGER NOT NULL,
    amr                   TEXT    NOT NULL,
    acr                   TEXT,
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,
    consumed_at           INTEGER
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

-- kind: 'online' or 'offline'.
CREATE TABLE grants (
    id                TEXT    NOT NULL PRIMARY KEY,
    user_id           TEXT    NOT NULL,
    client_id         TEXT    NOT NULL,
    scope             TEXT    NOT NULL,
    kind              TEXT    NOT NULL,
    session_id        TEXT,
    created_at        INTEGER NOT NULL,
    last_used_at      INTEGER NOT NULL,
    expires_at        INTEGER,
    revoked_at        INTEGER,
    revocation_reason TEXT
);
CREATE INDEX grants_user_id ON grants (user_id);
CREATE INDEX grants_session_id ON grants (session_id);

ALTER TABLE access_tokens ADD COLUMN grant_id TEXT;
CREATE INDEX access_tokens_grant_id ON access_tokens (grant_id);
