-- Tessera schema v4 (PostgreSQL): revoked JWT access tokens (RFC 7009). A JWT access token is
-- self-contained, so revoking it records its `jti` until the token expires; after that the row is
-- useless and the cleanup deletes it. No foreign keys: `client_id` names the client the token was
-- issued to, for audit. Timestamps are BIGINT seconds.

-- revoked_at: when it was first revoked (revoking again keeps it).
CREATE TABLE revoked_access_tokens (
    jti        TEXT   NOT NULL PRIMARY KEY,
    client_id  TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
-- For the cleanup of rows whose token has expired.
CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);
