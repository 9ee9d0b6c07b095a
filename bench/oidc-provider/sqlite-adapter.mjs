// A durable SQLite adapter for node-oidc-provider, for the side-by-side benchmark (issue 5).
//
// Written the way a production deployment on one SQLite file would be: better-sqlite3 (the
// synchronous driver; v12), WAL, synchronous=FULL (every commit is fsync'd before it returns), a
// busy timeout (several processes may share the file), and every adapter call is one autocommit
// statement, i.e. one transaction and one fsync per write. No batching, no caching in front of it.
//
// Schema: one table for every model, keyed by (model, id), with the payload as JSON and the
// columns that oidc-provider looks things up by (grantId, userCode, uid), plus the consumption
// time and the expiry. Expired rows are not returned (as with the in-memory adapter, where they
// drop out of the LRU); they are not swept either (a benchmark run is short).
//
// The adapter interface (oidc-provider's `Adapter`): one instance per model name, with
//   upsert(id, payload, expiresIn)  store or replace; expiresIn in seconds (may be absent)
//   find(id)                        the payload, with `consumed` set once consumed; or undefined
//   findByUserCode(userCode)        DeviceCode only
//   findByUid(uid)                  Session only
//   consume(id)                     mark consumed (epoch seconds)
//   destroy(id)                     delete
//   revokeByGrantId(grantId)        delete this model's rows of that grant (oidc-provider calls it
//                                   on every grant-bound model when it revokes a grant)
//
// Usage:
//   import { openSqliteStore } from './sqlite-adapter.mjs';
//   const store = openSqliteStore(Database, '/path/to/oidc.db');   // Database = better-sqlite3
//   new Provider(issuer, { adapter: store.Adapter, ... });
//   store.close();

export const BUSY_TIMEOUT_MS = 5000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS oidc_payload (
  model       TEXT    NOT NULL,
  id          TEXT    NOT NULL,
  payload     TEXT    NOT NULL,
  grant_id    TEXT,
  user_code   TEXT,
  uid         TEXT,
  consumed_at INTEGER,
  expires_at  INTEGER,
  PRIMARY KEY (model, id)
);
CREATE INDEX IF NOT EXISTS oidc_payload_grant_id ON oidc_payload (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS oidc_payload_user_code ON oidc_payload (user_code) WHERE user_code IS NOT NULL;
CREATE INDEX IF NOT EXISTS oidc_payload_uid ON oidc_payload (uid) WHERE uid IS NOT NULL;
`;

const epochTime = () => Math.floor(Date.now() / 1000);

// Opens the database file with the durability settings above. `Database` is better-sqlite3's
// default export (passed in, because compare.sh installs it into a temporary prefix).
export function openDatabase(Database, path) {
  const db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (String(mode).toLowerCase() !== 'wal') {
    db.close();
    throw new Error(`SQLite database ${path} cannot use WAL (journal_mode = ${mode})`);
  }
  db.pragma('synchronous = FULL');
  return db;
}

// Creates the table and indexes if missing. Idempotent; with several processes, the primary runs
// it once before the workers open the file.
export function migrate(db) {
  db.exec(SCHEMA);
}

// Opens `path`, migrates, and returns { db, Adapter, close }: `Adapter` is the class to pass as
// oidc-provider's `adapter` option (it is constructed with the model name).
export function openSqliteStore(Database, path) {
  const db = openDatabase(Database, path);
  migrate(db);

  const notExpired = '(expires_at IS NULL OR expires_at > @now)';
  const stmt = {
    upsert: db.prepare(`
      INSERT INTO oidc_payload (model, id, payload, grant_id, user_code, uid, consumed_at, expires_at)
      VALUES (@model, @id, @payload, @grantId, @userCode, @uid, @consumedAt, @expiresAt)
      ON CONFLICT (model, id) DO UPDATE SET
        payload = excluded.payload,
        grant_id = excluded.grant_id,
        user_code = excluded.user_code,
        uid = excluded.uid,
        consumed_at = excluded.consumed_at,
        expires_at = excluded.expires_at`),
    find: db.prepare(`
      SELECT payload, consumed_at FROM oidc_payload
      WHERE model = @model AND id = @id AND ${notExpired}`),
    findByUserCode: db.prepare(`
      SELECT payload, consumed_at FROM oidc_payload
      WHERE user_code = @userCode AND model = @model AND ${notExpired}`),
    findByUid: db.prepare(`
      SELECT payload, consumed_at FROM oidc_payload
      WHERE uid = @uid AND model = @model AND ${notExpired}`),
    consume: db.prepare(`
      UPDATE oidc_payload SET consumed_at = @now WHERE model = @model AND id = @id`),
    destroy: db.prepare('DELETE FROM oidc_payload WHERE model = @model AND id = @id'),
    revokeByGrantId: db.prepare(
      'DELETE FROM oidc_payload WHERE grant_id = @grantId AND model = @model'),
  };

  const toPayload = (row) => {
    if (!row) return undefined;
    const payload = JSON.parse(row.payload);
    if (row.consumed_at != null) payload.consumed = row.consumed_at;
    return payload;
  };

  class SqliteAdapter {
    constructor(name) {
      this.model = name;
    }

    async upsert(id, payload, expiresIn) {
      stmt.upsert.run({
        model: this.model,
        id,
        payload: JSON.stringify(payload),
        grantId: payload.grantId ?? null,
        userCode: payload.userCode ?? null,
        uid: payload.uid ?? null,
        // The payload carries `consumed` when a consumed model is saved again; an upsert replaces
        // the whole record, as the in-memory adapter does.
        consumedAt: typeof payload.consumed === 'number' ? payload.consumed : (payload.consumed ? epochTime() : null),
        expiresAt: typeof expiresIn === 'number' ? epochTime() + expiresIn : null,
      });
    }

    async find(id) {
      return toPayload(stmt.find.get({ model: this.model, id, now: epochTime() }));
    }

    async findByUserCode(userCode) {
      return toPayload(stmt.findByUserCode.get({ model: this.model, userCode, now: epochTime() }));
    }

    async findByUid(uid) {
      return toPayload(stmt.findByUid.get({ model: this.model, uid, now: epochTime() }));
    }

    async consume(id) {
      stmt.consume.run({ model: this.model, id, now: epochTime() });
    }

    async destroy(id) {
      stmt.destroy.run({ model: this.model, id });
    }

    async revokeByGrantId(grantId) {
      stmt.revokeByGrantId.run({ model: this.model, grantId });
    }
  }

  return {
    db,
    Adapter: SqliteAdapter,
    close: () => { if (db.open) db.close(); },
  };
}
