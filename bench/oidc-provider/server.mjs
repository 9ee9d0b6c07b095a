// node-oidc-provider configured like Tessera, for the side-by-side benchmark (issue 5).
//
// Started by bench/compare.sh; not a product. Everything comes from the environment:
//
//   PEER_PORT            loopback port to listen on (required)
//   BENCH_CLIENT_ID      client id (default "bench")
//   BENCH_CLIENT_SECRET  client secret (required)
//   BENCH_USERNAME       the one user (default "bench")
//   BENCH_PASSWORD       that user's password (required)
//   PEER_STORE           "memory" (default) or "sqlite": the persistence, see below
//   PEER_SQLITE_PATH     the SQLite database file (required with PEER_STORE=sqlite; created)
//   PEER_WORKERS         node processes (default 1). More than 1 only with PEER_STORE=sqlite: a
//                        node:cluster primary forks that many workers, which share the port and
//                        the SQLite file (the in-memory store cannot be shared, so it is refused).
//                        The primary generates the signing key and the cookie key and hands them
//                        to every worker, so a token issued by one worker verifies on any other.
//
// What is configured, and why (Tessera's defaults in brackets):
//   - token endpoint at /token, client_secret_basic                     [same]
//   - refresh-token rotation on every use (rotateRefreshToken: true);
//     a spent RT presented again revokes the whole grant               [rotation + reuse detection]
//   - RTs only with offline_access (issueRefreshToken), 30-day TTL,
//     not bound to a session                                           [offline RT, 30 days idle]
//   - access tokens: RFC 9068 JWTs signed with ES256, 300 s, aud = the
//     issuer, scope "offline_access" (resourceIndicators with a default
//     resource, accessTokenFormat "jwt")                               [ES256 JWT, 300 s, aud = issuer]
//   - client_credentials enabled (features.clientCredentials)          [same]
//   - persistence, PEER_STORE=memory: oidc-provider's default in-memory
//     adapter (an LRU in process memory, for development only; nothing
//     reaches a disk). Tessera commits every rotation to SQLite with
//     fsync (group commit), so this favours the peer.
//   - persistence, PEER_STORE=sqlite: sqlite-adapter.mjs beside this
//     file, on better-sqlite3: WAL, synchronous=FULL, busy_timeout 5 s,
//     each adapter call its own transaction (so each write is fsync'd
//     before the call returns). This is the durable equivalent of
//     Tessera's storage, written as a normal adapter would be: no group
//     commit. (JWT access tokens are not stored by oidc-provider; the
//     RefreshToken and Grant records are.)                             [SQLite, WAL, synchronous=FULL]
//   - oidc-provider has no password grant. A small grant type "password"
//     is registered here FOR BENCHMARKING ONLY, so that the load generator
//     obtains its initial refresh tokens with the same request it sends to
//     Tessera. It compares the password in constant time (no password hash,
//     unlike Tessera's argon2id) and issues an offline_access Grant, a JWT
//     access token and a RefreshToken through oidc-provider's own models, so
//     the refresh_token grant that is measured is oidc-provider's own, unchanged.
import cluster from 'node:cluster';
import * as crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// compare.sh installs oidc-provider (and better-sqlite3) into a temporary prefix and passes its
// node_modules in OIDC_PROVIDER_MODULES; without it, a normal resolution (e.g. a local npm
// install) is used.
async function loadModule(name) {
  const dir = process.env.OIDC_PROVIDER_MODULES;
  if (dir) {
    const require = createRequire(resolve(dir, '..', 'package.json'));
    return import(pathToFileURL(require.resolve(name)).href);
  }
  return import(name);
}

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`server.mjs: ${name} must be set`);
    process.exit(2);
  }
  return value;
}

function fail(message) {
  console.error(`server.mjs: ${message}`);
  process.exit(2);
}

const port = Number.parseInt(required('PEER_PORT'), 10);
const clientId = process.env.BENCH_CLIENT_ID || 'bench';
const clientSecret = required('BENCH_CLIENT_SECRET');
const username = process.env.BENCH_USERNAME || 'bench';
const password = required('BENCH_PASSWORD');

const store = process.env.PEER_STORE || 'memory';
if (store !== 'memory' && store !== 'sqlite') fail(`PEER_STORE must be "memory" or "sqlite", got "${store}"`);
const sqlitePath = store === 'sqlite' ? resolve(required('PEER_SQLITE_PATH')) : undefined;
const workerCount = Number(process.env.PEER_WORKERS || '1');
if (!Number.isInteger(workerCount) || workerCount < 1) {
  fail(`PEER_WORKERS must be a positive integer, got "${process.env.PEER_WORKERS}"`);
}
if (workerCount > 1 && store !== 'sqlite') {
  fail('PEER_WORKERS > 1 needs PEER_STORE=sqlite (the in-memory store is not shared between processes)');
}

const issuer = `http://127.0.0.1:${port}`;

// ES256 signing key and cookie key, generated at start (Tessera generates its keys on first start,
// too). With several workers the primary generates them and passes them on in the environment.
function generateKeys() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    jwk: {
      ...privateKey.export({ format: 'jwk' }),
      alg: 'ES256',
      use: 'sig',
      kid: `es256-${crypto.randomBytes(8).toString('base64url')}`,
    },
    cookieKey: crypto.randomBytes(32).toString('base64url'),
  };
}

async function loadSqlite() {
  const { default: Database } = await loadModule('better-sqlite3');
  const adapterUrl = pathToFileURL(resolve(dirname(fileURLToPath(import.meta.url)), 'sqlite-adapter.mjs'));
  const adapterModule = await import(adapterUrl.href);
  return { Database, adapterModule };
}

if (workerCount > 1 && cluster.isPrimary) {
  await runPrimary();
} else {
  await serve();
}

// ---- several workers: the primary only forks, watches and stops them ----
async function runPrimary() {
  // Create the file, switch it to WAL and create the schema once, before the workers open it.
  const { Database, adapterModule } = await loadSqlite();
  const db = adapterModule.openDatabase(Database, sqlitePath);
  adapterModule.migrate(db);
  db.close();

  const { jwk, cookieKey } = generateKeys();
  const env = { PEER_SIGNING_JWK: JSON.stringify(jwk), PEER_COOKIE_KEY: cookieKey };
  let stopping = false;
  let listening = 0;
  const workers = [];
  for (let i = 0; i < workerCount; i += 1) workers.push(cluster.fork(env));

  cluster.on('listening', () => {
    listening += 1;
    if (listening === workerCount) {
      console.log(`oidc-provider listening on ${issuer} (node ${process.version}, ${workerCount} workers, `
        + `sqlite ${sqlitePath})`);
    }
  });
  function stopAll() {
    stopping = true;
    for (const w of workers) if (!w.isDead()) w.process.kill('SIGTERM');
    setTimeout(() => {
      for (const w of workers) if (!w.isDead()) w.process.kill('SIGKILL');
      process.exit();
    }, 3000).unref();
  }
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      // A worker that dies would skew the run: stop everything and exit non-zero, so that
      // compare.sh notices the server is gone.
      console.error(`server.mjs: worker ${worker.process.pid} exited (code ${code}, signal ${signal}); stopping`);
      process.exitCode = 1;
      stopAll();
    }
    if (workers.every((w) => w.isDead())) process.exit();
  });
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      if (workers.every((w) => w.isDead())) process.exit();
      if (!stopping) stopAll();
    });
  }
}

// ---- one server process (the only one, or a cluster worker) ----
async function serve() {
  // The one resource server: the issuer itself, as Tessera's `aud` for a client without audiences.
  const resource = issuer;
  const scope = 'offline_access';
  const accessTokenTTL = 300;
  const refreshTokenTTL = 30 * 24 * 60 * 60;
  // A stable account id for the user, like Tessera's user id (the JWT `sub`).
  const accountId = crypto.createHash('sha256').update(`bench-user:${username}`).digest('base64url').slice(0, 22);

  const { default: Provider, errors } = await loadModule('oidc-provider');

  const keys = process.env.PEER_SIGNING_JWK
    ? { jwk: JSON.parse(process.env.PEER_SIGNING_JWK), cookieKey: required('PEER_COOKIE_KEY') }
    : generateKeys();
  const { jwk } = keys;

  let sqliteStore;
  if (store === 'sqlite') {
    const { Database, adapterModule } = await loadSqlite();
    sqliteStore = adapterModule.openSqliteStore(Database, sqlitePath);
  }

  const resourceServerInfo = {
    scope,
    audience: issuer,
    accessTokenTTL,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  };

  const configuration = {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['password', 'refresh_token', 'client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope,
      id_token_signed_response_alg: 'ES256',
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: [keys.cookieKey] },
    ...(sqliteStore ? { adapter: sqliteStore.Adapter } : {}),
    scopes: ['openid', 'offline_access'],
    routes: { token: '/token', jwks: '/jwks' },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator !== resource) throw new errors.InvalidTarget();
          return resourceServerInfo;
        },
      },
    },
    interactions: { url: async () => '/interaction-not-used' },
    findAccount: async (_ctx, id) => (id === accountId
      ? { accountId, claims: async () => ({ sub: accountId }) }
      : undefined),
    issueRefreshToken: async (_ctx, client, source) => client.grantTypeAllowed('refresh_token')
      && source.scopes.has('offline_access'),
    rotateRefreshToken: true,
    expiresWithSession: async () => false,
    ttl: {
      AccessToken: accessTokenTTL,
      ClientCredentials: accessTokenTTL,
      RefreshToken: refreshTokenTTL,
      Grant: refreshTokenTTL,
    },
  };

  const provider = new Provider(issuer, configuration);

  // ---- grant_type=password: benchmark bootstrap only (see the header) ----
  const expectedPassword = crypto.createHash('sha256').update(password).digest();
  function passwordMatches(given) {
    const digest = crypto.createHash('sha256').update(given).digest();
    return crypto.timingSafeEqual(digest, expectedPassword);
  }

  provider.registerGrantType('password', async (ctx) => {
    const { params, client } = ctx.oidc;
    if (!params.username || !params.password) {
      throw new errors.InvalidRequest('username and password are required');
    }
    if (params.username !== username || !passwordMatches(params.password)) {
      throw new errors.InvalidGrant('invalid username or password');
    }
    const requested = new Set((params.scope || scope).split(' ').filter(Boolean));
    const allowed = new Set(client.scope.split(' '));
    for (const s of requested) {
      if (!allowed.has(s)) throw new errors.InvalidScope('requested scope is not allowed', s);
    }
    const grantedScope = [...requested].join(' ');

    const grant = new provider.Grant({ accountId, clientId: client.clientId });
    grant.addOIDCScope(grantedScope);
    grant.addResourceScope(resource, grantedScope);
    const grantId = await grant.save();

    const now = Math.floor(Date.now() / 1000);
    const at = new provider.AccessToken({
      accountId, client, grantId, gty: 'password', expiresWithSession: false,
    });
    at.resourceServer = new provider.ResourceServer(resource, resourceServerInfo);
    at.scope = grant.getResourceScopeFiltered(resource, [...requested]);
    ctx.oidc.entity('AccessToken', at);
    const accessToken = await at.save();

    let refreshToken;
    if (await configuration.issueRefreshToken(ctx, client, { scopes: requested })) {
      const rt = new provider.RefreshToken({
        accountId,
        amr: ['pwd'],
        authTime: now,
        client,
        expiresWithSession: false,
        grantId,
        gty: 'password',
        resource,
        rotations: 0,
        scope: grantedScope,
      });
      ctx.oidc.entity('RefreshToken', rt);
      refreshToken = await rt.save();
    }

    ctx.body = {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: at.expiration,
      scope: at.scope || undefined,
      refresh_token: refreshToken,
    };
  }, ['username', 'password', 'scope']);

  provider.on('server_error', (_ctx, err) => console.error('server_error:', err));

  const server = provider.listen(port, '127.0.0.1', () => {
    if (!cluster.isWorker) {
      console.log(`oidc-provider listening on ${issuer} (node ${process.version}, `
        + `${store === 'sqlite' ? `sqlite ${sqlitePath}` : 'in-memory adapter'})`);
    }
  });
  // Closed-loop load with keep-alive connections: don't let node drop idle ones mid-run.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;

  const stop = () => {
    sqliteStore?.close();
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      server.close(stop);
      server.closeAllConnections?.();
      setTimeout(stop, 2000).unref();
    });
  }
}
