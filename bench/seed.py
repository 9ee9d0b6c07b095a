#!/usr/bin/env python3
"""Benchmark-only bulk seeding: adds N live offline grants, each with one unused refresh token, to
a Tessera SQLite database (stopped server, already migrated), in one transaction.

The seeded rows are background load for the storage scale scenario (docs/PERFORMANCE.md): the
load generator's own chains start from fresh logins, so the seeded tokens' values are never needed
(random hashes stand in for them). Usage: bench/seed.py tessera.db 1000000 [--client bench]
"""
import argparse
import os
import sqlite3
import time

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("database")
parser.add_argument("grants", type=int)
parser.add_argument("--client", default="bench")
parser.add_argument("--users", type=int, default=10_000, help="spread the grants over this many user ids")
args = parser.parse_args()

now = int(time.time())
db = sqlite3.connect(args.database)
db.execute("PRAGMA journal_mode=WAL")
started = time.time()
batch = 50_000
with db:
    for start in range(0, args.grants, batch):
        count = min(batch, args.grants - start)
        grants = []
        tokens = []
        for i in range(start, start + count):
            grant_id = f"seed-{i:08d}-{os.urandom(4).hex()}"
            grants.append((grant_id, f"seed-user-{i % args.users}", args.client, "offline_access", "offline", None, now, now, None))
            tokens.append((os.urandom(32), grant_id, args.client, now, now + 2_592_000))
        db.executemany(
            "INSERT INTO grants (id, user_id, client_id, scope, kind, session_id, created_at, last_used_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            grants,
        )
        db.executemany(
            "INSERT INTO refresh_tokens (hash, grant_id, client_id, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            tokens,
        )
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
print(f"seeded {args.grants} grants and refresh tokens in {time.time() - started:.1f} s")
