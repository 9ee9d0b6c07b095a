-- Tessera schema v8 (PostgreSQL): indexes for purging SSO sessions past their hard end and grants
-- revoked or past their hard end (GrantRepository::cleanup_ended, SessionRepository::cleanup_expired).
-- Neither column changes on a refresh (which updates grants.last_used_at and
-- sso_sessions.last_active_at), so refreshes stay heap-only updates.
CREATE INDEX sso_sessions_expires_at ON sso_sessions (expires_at);
CREATE INDEX grants_expires_at ON grants (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX grants_revoked_at ON grants (revoked_at) WHERE revoked_at IS NOT NULL;
