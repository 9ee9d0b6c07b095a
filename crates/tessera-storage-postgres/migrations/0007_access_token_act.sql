-- Tessera schema v7 (PostgreSQL): the RFC 8693 `act` claim of opaque access tokens issued by a
-- token-exchange delegation (who acts on the subject's behalf), as JSON TEXT (decoded by Tessera,
-- never queried by SQL). NULL for every other token, including every row written before this
-- migration. Adding a nullable column with no default rewrites no rows.
ALTER TABLE access_tokens ADD COLUMN act TEXT;
