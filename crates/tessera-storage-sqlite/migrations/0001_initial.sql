-- Tessera schema v1 (SQLite). Timestamps are INTEGER seconds since the Unix epoch; hashes are
-- 32-byte SHA-256 BLOBs; JSON documents are TEXT.

CREATE TABLE clients (
    client_id   TEXT    NOT NULL PRIMARY KEY,
    secret_hash BLOB,
    settings    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    kid                   TEXT    NOT NULL PRIMARY KEY,
    algorithm             TEXT    NOT NULL,
    public_jwk            TEXT    NOT NULL,
    encrypted_private_key BLOB    NOT NULL,
    created_at            INTEGER NOT NULL,
    activates_at          INTEGER NOT NULL,
    retires_at            INTEGER
);

CREATE TABLE client_assertion_jtis (
    client_id  TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_expires_at ON client_assertion_jtis (expires_at);

CREATE TABLE access_tokens (
    hash       BLOB    NOT NULL PRIMARY KEY,
    jti        TEXT    NOT NULL UNIQUE,
    client_id  TEXT    NOT NULL,
    subject    TEXT,
    scope      TEXT    NOT NULL,
    audience   TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);
