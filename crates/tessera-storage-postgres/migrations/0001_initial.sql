-- Tessera schema v1 (PostgreSQL). Timestamps are BIGINT seconds since the Unix epoch; hashes are
-- 32-byte SHA-256 BYTEA; JSON documents are TEXT (decoded by Tessera, never queried by SQL).

CREATE TABLE clients (
    client_id   TEXT   NOT NULL PRIMARY KEY,
    secret_hash BYTEA,
    settings    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid                   TEXT   NOT NULL PRIMARY KEY,
    algorithm             TEXT   NOT NULL,
    public_jwk            TEXT   NOT NULL,
    encrypted_private_key BYTEA  NOT NULL,
    created_at            BIGINT NOT NULL,
    activates_at          BIGINT NOT NULL,
    retires_at            BIGINT
);

CREATE TABLE client_assertion_jtis (
    client_id  TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_expires_at ON client_assertion_jtis (expires_at);

CREATE TABLE access_tokens (
    hash       BYTEA  NOT NULL PRIMARY KEY,
    jti        TEXT   NOT NULL UNIQUE,
    client_id  TEXT   NOT NULL,
    subject    TEXT,
    scope      TEXT   NOT NULL,
    audience   TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);
