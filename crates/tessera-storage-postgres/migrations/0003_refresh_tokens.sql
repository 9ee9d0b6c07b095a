-- Tessera schema v3 (PostgreSQL): refresh tokens (DESIGN §5). No foreign keys: a token row names its
-- grant and parent but is deleted on its own schedule (cleanup of expired tokens and of tokens of
-- revoked grants). Timestamps are BIGINT seconds; hashes 32-byte BYTEA.

-- use_count: times the token has been used; spent_at: when it was used up (rotation on).
CREATE TABLE refresh_tokens (
    hash        BYTEA   NOT NULL PRIMARY KEY,
    grant_id    TEXT    NOT NULL,
    parent_hash BYTEA,
    client_id   TEXT    NOT NULL,
    issued_at   BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    use_count   BIGINT  NOT NULL DEFAULT 0,
    spent_at    BIGINT
);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- For the cleanup of revoked grants' tokens: walks only the revoked grants.
CREATE INDEX grants_revoked_at ON grants (revoked_at) WHERE revoked_at IS NOT NULL;
