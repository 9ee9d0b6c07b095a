#!/usr/bin/env bash
# Side by side: Tessera vs node-oidc-provider on the same machine and workload (issue 5,
# DESIGN.md §7 "side by side: ≥ 10× node-oidc-provider").
#
#   bench/compare.sh [--duration S] [--concurrency C] [--warmup S] [--rounds N] [--no-build]
#                    [--peer-store memory|sqlite|both] [--peer-workers N] [--json PATH] [--keep-temp]
#
#   --rounds N      measure every server N times (default 3), interleaved: round 1 runs every
#                   server once, then round 2, ...; the table shows medians over the rounds and
#                   the ratio is the median of the per-round ratios (with their range), so a noisy
#                   moment of a shared machine skews one round, not the result
#   --peer-store    which oidc-provider persistence to measure (default both): "memory", its
#                   default in-memory adapter (nothing on disk), or "sqlite", the durable adapter
#                   in bench/oidc-provider/sqlite-adapter.mjs (WAL, synchronous=FULL)
#   --peer-workers  node processes for the sqlite peer (default 1; node:cluster, one shared file)
#   --json PATH     also write every figure (scenario x target) to PATH as one JSON document
#   --keep-temp     keep the temporary directory (databases, logs, generator output) for debugging
#
# 1. Builds Tessera and the load generator (release), starts `tessera serve` on a free loopback
#    port in a temporary directory (SQLite, durable: every rotation is committed and fsync'd), and
#    creates the bench client and user with the CLI.
# 2. Installs node-oidc-provider (the major pinned in bench/oidc-provider/package.json) and, for
#    the sqlite peer, better-sqlite3 (idem) into a temporary folder, and starts
#    bench/oidc-provider/server.mjs once per peer store, each on its own free loopback port
#    (they idle while another server is measured), configured like Tessera: RT rotation on every
#    use, offline_access RTs, ES256 JWT access tokens (300 s), client_credentials,
#    client_secret_basic, token endpoint at /token.
#    Persistence, peer "memory": oidc-provider's default in-memory adapter (development only).
#    Nothing reaches a disk, which favours the peer (Tessera fsyncs every rotation).
#    Persistence, peer "sqlite": a SQLite file in the temporary directory, WAL + synchronous=FULL,
#    busy_timeout 5 s, one transaction (one fsync) per adapter call, as a normal adapter does it
#    (Tessera instead groups concurrent commits into one fsync). With --peer-workers N, N node
#    processes share the port and the file (and one signing key).
#    Initial RTs: oidc-provider has no password grant, so server.mjs registers a grant type
#    "password" for benchmarking only (registerGrantType) that issues an offline_access Grant, an
#    access token and a RefreshToken through oidc-provider's own models. The generator therefore
#    sends both servers the same requests; the refresh_token grant it measures is oidc-provider's own.
#    (The password grant only starts chains and is not measured.)
# 3. Runs `tessera-bench refresh` and `tessera-bench client-credentials` against every server, one
#    after the other, with the same options, --rounds times, and prints a table: one row per
#    scenario and peer store, with the median ratio Tessera/peer and its range over the rounds.
#
# Exits non-zero when the generator reported failed requests (or anything else went wrong).
# All servers are stopped and the temporary directories removed on exit.
# Loopback only; the npm registry must be reachable for the install (better-sqlite3 may compile
# its native module from source, which takes a minute).
set -euo pipefail

duration=10
concurrency=32
warmup=2
rounds=3
build=1
peer_store=both
peer_workers=1
json_out=""
keep_temp=0

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}
die() {
    echo "compare.sh: $*" >&2
    exit 1
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) [[ $# -ge 2 ]] || die "--duration needs a value"; duration="$2"; shift 2 ;;
        --duration=*) duration="${1#*=}"; shift ;;
        --concurrency | -c) [[ $# -ge 2 ]] || die "--concurrency needs a value"; concurrency="$2"; shift 2 ;;
        --concurrency=*) concurrency="${1#*=}"; shift ;;
        --warmup) [[ $# -ge 2 ]] || die "--warmup needs a value"; warmup="$2"; shift 2 ;;
        --warmup=*) warmup="${1#*=}"; shift ;;
        --rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; rounds="$2"; shift 2 ;;
        --rounds=*) rounds="${1#*=}"; shift ;;
        --no-build) build=0; shift ;;
        --peer-store) [[ $# -ge 2 ]] || die "--peer-store needs a value"; peer_store="$2"; shift 2 ;;
        --peer-store=*) peer_store="${1#*=}"; shift ;;
        --peer-workers) [[ $# -ge 2 ]] || die "--peer-workers needs a value"; peer_workers="$2"; shift 2 ;;
        --peer-workers=*) peer_workers="${1#*=}"; shift ;;
        --json) [[ $# -ge 2 ]] || die "--json needs a value"; json_out="$2"; shift 2 ;;
        --json=*) json_out="${1#*=}"; shift ;;
        --keep-temp) keep_temp=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ "$duration" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--duration must be a number of seconds, got '$duration'"
[[ "$warmup" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--warmup must be a number of seconds, got '$warmup'"
[[ "$concurrency" =~ ^[1-9][0-9]*$ ]] || die "--concurrency must be a positive integer, got '$concurrency'"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, got '$rounds'"
[[ "$peer_workers" =~ ^[1-9][0-9]*$ ]] || die "--peer-workers must be a positive integer, got '$peer_workers'"
case "$peer_store" in
    memory) peer_stores=(memory) ;;
    sqlite) peer_stores=(sqlite) ;;
    both) peer_stores=(memory sqlite) ;;
    *) die "--peer-store must be memory, sqlite or both, got '$peer_store'" ;;
esac
if [[ "$peer_store" == memory && "$peer_workers" -gt 1 ]]; then
    die "--peer-workers applies to the sqlite peer only (the in-memory store cannot be shared)"
fi
if [[ -n "$json_out" ]]; then
    [[ -d "$(dirname "$json_out")" ]] || die "--json: the directory of $json_out does not exist"
    json_out="$(cd "$(dirname "$json_out")" && pwd)/$(basename "$json_out")"
fi

for tool in cargo node npm curl; do
    command -v "$tool" >/dev/null || die "'$tool' is needed but not on PATH"
done

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"
peer_dir="$bench_dir/oidc-provider"

# ---------------------------------------------------------------- clean-up
work="$(mktemp -d "${TMPDIR:-/tmp}/tessera-compare.XXXXXX")"
tessera_pid=""
peer_pids=()
generator_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # A peer with --peer-workers > 1 is a node:cluster primary: on SIGTERM it stops its workers
    # itself, and a worker whose primary is gone exits (its IPC channel closes).
    for pid in "$generator_pid" "$tessera_pid" "${peer_pids[@]}"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "$generator_pid" "$tessera_pid" "${peer_pids[@]}"; do
        [[ -n "$pid" ]] || continue
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [[ $keep_temp -eq 1 ]]; then
        echo "compare.sh: kept the temporary directory $work (--keep-temp)" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
# A free loopback port (the kernel picks; tiny race until the server binds it).
free_port() {
    node -e '
        const s = require("net").createServer();
        s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# wait_http NAME PID URL LOG: until URL answers 200, the process dies, or 30 s pass.
wait_http() {
    local name="$1" pid="$2" url="$3" log="$4"
    for _ in $(seq 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- $log" >&2
            tail -n 30 "$log" >&2 || true
            die "$name exited during start-up (log above)"
        fi
        if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "--- $log" >&2
    tail -n 30 "$log" >&2 || true
    die "$name did not answer $url within 30 s (log above)"
}

# json FILE EXPR: evaluates EXPR (JavaScript, the parsed document is `j`) and prints the result.
json() {
    node -e '
        const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const v = (0, eval)("(j) => (" + process.argv[2] + ")")(j);
        console.log(v === undefined || v === null ? "" : v);' "$1" "$2"
}

# ---------------------------------------------------------------- 1. Tessera
cd "$repo"
if [[ $build -eq 1 ]]; then
    echo "==> building tessera and tessera-bench (release)" >&2
    cargo build --release -p tessera -p tessera-bench >&2 ||
        die "cargo build --release -p tessera -p tessera-bench failed"
fi
target_dir="$(cargo metadata --format-version 1 --no-deps | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d));
    process.stdin.on("end", () => console.log(JSON.parse(s).target_directory));')"
tessera="$target_dir/release/tessera"
generator="$target_dir/release/tessera-bench"
[[ -x "$tessera" ]] || die "$tessera not found (build it, or drop --no-build)"
[[ -x "$generator" ]] || die "$generator not found (build it, or drop --no-build)"

tessera_port="$(free_port)"
tessera_url="http://127.0.0.1:$tessera_port"
mkdir -p "$work/tessera"
export TESSERA_SERVER__LISTEN="127.0.0.1:$tessera_port"
export TESSERA_SERVER__ISSUER="$tessera_url"
export TESSERA_DATABASE__URL="sqlite://$work/tessera/tessera.db"
export TESSERA_KEYS__ENCRYPTION_KEY_FILE="$work/tessera/tessera.kek"
export TESSERA_LOG__FILTER=warn
unset TESSERA_CONFIG RUST_LOG
head -c 32 /dev/urandom | base64 >"$work/tessera/tessera.kek"

echo "==> starting tessera serve on $tessera_url (SQLite in $work/tessera)" >&2
(cd "$work/tessera" && exec "$tessera" serve) >"$work/tessera/serve.log" 2>&1 &
tessera_pid=$!
wait_http "tessera serve" "$tessera_pid" "$tessera_url/readyz" "$work/tessera/serve.log"

(cd "$work/tessera" && "$tessera" client create --id bench --grant-type password \
    --grant-type refresh_token --grant-type client_credentials --scope offline_access \
    --json) >"$work/tessera/client.json" || die "tessera client create failed"
tessera_secret="$(json "$work/tessera/client.json" 'j.client_secret')"
[[ -n "$tessera_secret" ]] || die "no client_secret in the output of tessera client create"
printf 'bench-password\n' | (cd "$work/tessera" && "$tessera" user create bench --password-stdin) \
    >/dev/null || die "tessera user create failed"

# ---------------------------------------------------------------- 2. node-oidc-provider
dependency() { # dependency NAME: its version range in $peer_dir/package.json
    local spec
    spec="$(json "$peer_dir/package.json" "j.dependencies[\"$1\"]")"
    [[ -n "$spec" ]] || die "no $1 dependency in $peer_dir/package.json"
    printf '%s' "$spec"
}
want_sqlite=0
for store in "${peer_stores[@]}"; do [[ "$store" == sqlite ]] && want_sqlite=1; done
packages=("oidc-provider@$(dependency oidc-provider)")
[[ $want_sqlite -eq 1 ]] && packages+=("better-sqlite3@$(dependency better-sqlite3)")
echo "==> installing ${packages[*]} into $work/npm" >&2
mkdir -p "$work/npm"
npm install --prefix "$work/npm" --no-save --no-audit --no-fund --loglevel=error \
    "${packages[@]}" >"$work/npm/install.log" 2>&1 || {
    cat "$work/npm/install.log" >&2
    die "npm install ${packages[*]} failed (is the npm registry reachable?)"
}
peer_version="$(json "$work/npm/node_modules/oidc-provider/package.json" 'j.version')"
sqlite_driver=""
if [[ $want_sqlite -eq 1 ]]; then
    sqlite_driver="better-sqlite3 $(json "$work/npm/node_modules/better-sqlite3/package.json" 'j.version')"
fi

peer_secret="$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
declare -A peer_url peer_desc
used_ports=" $tessera_port "
for store in "${peer_stores[@]}"; do
    port="$(free_port)"
    while [[ "$used_ports" == *" $port "* ]]; do port="$(free_port)"; done
    used_ports+="$port "
    peer_url[$store]="http://127.0.0.1:$port"
    mkdir -p "$work/peer-$store"
    workers=1
    if [[ "$store" == sqlite ]]; then
        workers="$peer_workers"
        processes="$workers node process"
        [[ $workers -eq 1 ]] || processes+="es sharing the port and the file (node:cluster)"
        peer_desc[$store]="SQLite adapter ($sqlite_driver), WAL + synchronous=FULL, one transaction (one fsync) per adapter call (a rotation makes two: consume the old RT, insert the new one), $processes"
    else
        peer_desc[$store]="default in-memory adapter (nothing on disk; favours the peer), 1 node process"
    fi
    echo "==> starting oidc-provider $peer_version on ${peer_url[$store]} ($store store, $workers process(es))" >&2
    PEER_PORT="$port" PEER_STORE="$store" PEER_SQLITE_PATH="$work/peer-$store/oidc.db" \
        PEER_WORKERS="$workers" BENCH_CLIENT_ID=bench BENCH_CLIENT_SECRET="$peer_secret" \
        BENCH_USERNAME=bench BENCH_PASSWORD=bench-password NODE_ENV=production \
        OIDC_PROVIDER_MODULES="$work/npm/node_modules" \
        node "$peer_dir/server.mjs" >"$work/peer-$store/server.log" 2>&1 &
    peer_pids+=($!)
    wait_http "oidc-provider ($store)" "$!" "${peer_url[$store]}/.well-known/openid-configuration" \
        "$work/peer-$store/server.log"
done

# ---------------------------------------------------------------- 3. the runs
# Percentage of CPU time busy over one second, machine-wide: all servers should be idle between
# runs, so much more means something else is loading the machine and skewing the comparison.
cpu_busy() {
    local a b
    read -r _ a < <(head -n 1 /proc/stat) || return 0
    sleep 1
    read -r _ b < <(head -n 1 /proc/stat) || return 0
    node -e '
        const [a, b] = process.argv.slice(1).map((s) => s.trim().split(/\s+/).map(Number));
        const d = b.map((v, i) => v - a[i]);
        const total = d.slice(0, 8).reduce((x, y) => x + y, 0);
        console.log(total > 0 ? Math.round(100 * (total - d[3] - d[4]) / total) : 0);' "$a" "$b"
}
failed=0
# run NAME SCENARIO URL SECRET ROUND: the generator's JSON goes to $work/NAME-SCENARIO-rROUND.json.
run() {
    local name="$1" scenario="$2" url="$3" secret="$4" round="$5" out="$work/$1-$2-r$5.json" rc=0
    if [[ -r /proc/stat ]]; then
        local busy
        busy="$(cpu_busy)"
        if [[ "$busy" -gt 20 ]]; then
            echo "!!! warning: the machine is ${busy}% busy before this run: something else is" \
                "running, and the figures will be skewed" >&2
        fi
    fi
    echo "==> round $round/$rounds: tessera-bench $scenario against $name ($url): ${warmup}s warm-up + ${duration}s, $concurrency connections" >&2
    # In the background, so that a signal reaches the trap at once (bash defers traps while a
    # foreground child runs); the trap then stops the generator too.
    TESSERA_BENCH_CLIENT_SECRET="$secret" TESSERA_BENCH_PASSWORD=bench-password \
        "$generator" "$scenario" --url "$url" --concurrency "$concurrency" \
        --duration "$duration" --warmup "$warmup" --client-id bench --username bench \
        --json >"$out" &
    generator_pid=$!
    wait "$generator_pid" || rc=$?
    generator_pid=""
    if [[ $rc -ne 0 && $rc -ne 1 ]] || [[ ! -s "$out" ]]; then
        die "tessera-bench $scenario against $name could not run (exit $rc)"
    fi
    local errors
    errors="$(json "$out" 'j.errors')"
    if [[ $rc -ne 0 || "$errors" != "0" ]]; then
        echo "!!! $name/$scenario (round $round): $errors failed requests; first: $(json "$out" 'j.first_error')" >&2
        failed=1
    fi
    for pid in "$tessera_pid" "${peer_pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "a server died during the $name/$scenario run"
    done
}

scenarios=(refresh client-credentials)
for round in $(seq "$rounds"); do
    for scenario in "${scenarios[@]}"; do
        run tessera "$scenario" "$tessera_url" "$tessera_secret" "$round"
        for store in "${peer_stores[@]}"; do
            run "oidc-provider-$store" "$scenario" "${peer_url[$store]}" "$peer_secret" "$round"
        done
    done
done

# The SQLite peer must really have written: count its rows (read-only; WAL lets us read while it
# runs). The refresh runs leave one RefreshToken row per rotation (spent ones stay, marked
# consumed) and one Grant per chain.
sqlite_rows=""
if [[ $want_sqlite -eq 1 ]]; then
    sqlite_rows="$(node -e '
        const Database = require(process.argv[1]);
        const db = new Database(process.argv[2], { readonly: true, fileMustExist: true });
        const n = (model) => db.prepare("SELECT count(*) AS n FROM oidc_payload WHERE model = ?").get(model).n;
        console.log(JSON.stringify({
            RefreshToken: n("RefreshToken"), Grant: n("Grant"),
            consumed: db.prepare("SELECT count(*) AS n FROM oidc_payload WHERE consumed_at IS NOT NULL").get().n,
            journal_mode: db.pragma("journal_mode", { simple: true }),
        }));
        db.close();' "$work/npm/node_modules/better-sqlite3" "$work/peer-sqlite/oidc.db")" ||
        die "could not read the SQLite peer's database $work/peer-sqlite/oidc.db"
    printf '%s\n' "$sqlite_rows" >"$work/peer-sqlite/rows.json"
    rt_rows="$(json "$work/peer-sqlite/rows.json" 'j.RefreshToken')"
    grant_rows="$(json "$work/peer-sqlite/rows.json" 'j.Grant')"
    if [[ "$rt_rows" -eq 0 || "$grant_rows" -eq 0 ]]; then
        die "the SQLite peer's database has $rt_rows RefreshToken and $grant_rows Grant rows: it did not persist"
    fi
fi

# ---------------------------------------------------------------- the table (and --json)
tessera_version="$("$tessera" --version 2>/dev/null | awk '{print $NF}')"
tessera_desc="SQLite, durable (WAL + synchronous=FULL, fsync'd group commit), 1 process (multi-threaded)"
echo
echo "Tessera $tessera_version vs node-oidc-provider $peer_version" \
    "(node $(node --version)), $(nproc) CPUs, ${concurrency} connections," \
    "${warmup}s warm-up + ${duration}s per run, $rounds round(s) (medians)"
echo "Tessera: $tessera_desc."
for store in "${peer_stores[@]}"; do
    echo "oidc-provider, peer \"$store\": ${peer_desc[$store]}."
done
if [[ -n "$sqlite_rows" ]]; then
    echo "  (sqlite peer's file after the runs: $rt_rows RefreshToken rows, $grant_rows Grant rows," \
        "journal_mode $(json "$work/peer-sqlite/rows.json" 'j.journal_mode'))"
fi
echo
targets=(tessera)
for store in "${peer_stores[@]}"; do targets+=("oidc-provider-$store"); done
descs=("Tessera $tessera_version: $tessera_desc")
for store in "${peer_stores[@]}"; do descs+=("oidc-provider $peer_version: ${peer_desc[$store]}"); done
# Reads every round's generator output; prints the table and, with --json, writes the document.
WORK="$work" SCENARIOS="${scenarios[*]}" TARGETS="${targets[*]}" ROUNDS="$rounds" \
    DESCS="$(printf '%s\n' "${descs[@]}")" FAILED="$failed" SQLITE_ROWS="$sqlite_rows" \
    TESSERA_VERSION="$tessera_version" PEER_VERSION="$peer_version" SQLITE_DRIVER="$sqlite_driver" \
    CONCURRENCY="$concurrency" WARMUP="$warmup" DURATION="$duration" PEER_WORKERS="$peer_workers" \
    node -e '
    const fs = require("fs");
    const os = require("os");
    const e = process.env;
    const scenarios = e.SCENARIOS.split(" ");
    const targets = e.TARGETS.split(" ");
    const descs = e.DESCS.split("\n");
    const rounds = Number(e.ROUNDS);
    const read = (target, scenario, round) =>
        JSON.parse(fs.readFileSync(`${e.WORK}/${target}-${scenario}-r${round}.json`, "utf8"));
    const median = (xs) => {
        const s = [...xs].sort((a, b) => a - b);
        const m = s.length >> 1;
        return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
    };
    const runs = {}; // runs[scenario][target] = [generator output per round]
    for (const scenario of scenarios) {
        runs[scenario] = {};
        for (const target of targets) {
            runs[scenario][target] = Array.from({ length: rounds }, (_, i) => read(target, scenario, i + 1));
        }
    }
    const rps = (gs) => median(gs.map((g) => g.throughput));
    const lat = (gs, p) => median(gs.map((g) => g.latency_ms?.[p] ?? NaN));
    const errs = (gs) => gs.reduce((n, g) => n + g.errors, 0);
    const pad = (v, w) => String(v).padStart(w);
    console.log("scenario".padEnd(20), "peer".padEnd(8), pad("Tessera/s", 10), pad("peer/s", 9),
        pad("ratio", 7), pad("(range)", 14), pad("T p50 ms", 9), pad("T p99 ms", 9),
        pad("P p50 ms", 9), pad("P p99 ms", 9), pad("errors", 8));
    const ratios = [];
    for (const scenario of scenarios) {
        const t = runs[scenario].tessera;
        for (const target of targets.filter((x) => x !== "tessera")) {
            const p = runs[scenario][target];
            const each = t.map((g, i) => (p[i].throughput > 0 ? g.throughput / p[i].throughput : NaN));
            const r = median(each);
            ratios.push({ scenario, peer: target, tessera_over_peer: r, per_round: each });
            const range = rounds > 1
                ? `(${Math.min(...each).toFixed(1)}-${Math.max(...each).toFixed(1)})` : "";
            console.log(scenario.padEnd(20), target.replace("oidc-provider-", "").padEnd(8),
                pad(rps(t).toFixed(0), 10), pad(rps(p).toFixed(0), 9), pad(r.toFixed(1) + "x", 7),
                pad(range, 14), pad(lat(t, "p50").toFixed(2), 9), pad(lat(t, "p99").toFixed(2), 9),
                pad(lat(p, "p50").toFixed(2), 9), pad(lat(p, "p99").toFixed(2), 9),
                pad(`${errs(t)}/${errs(p)}`, 8));
        }
    }
    if (rounds > 1) {
        console.log("\nper round, req/s:");
        for (const scenario of scenarios) {
            for (const target of targets) {
                console.log(`  ${scenario.padEnd(20)} ${target.padEnd(22)}`,
                    runs[scenario][target].map((g) => g.throughput.toFixed(0)).join(" / "));
            }
        }
    }
    if (process.argv[1]) {
        const results = [];
        for (const scenario of scenarios) {
            for (const target of targets) {
                const gs = runs[scenario][target];
                results.push({
                    scenario, target,
                    throughput_rps: rps(gs),
                    p50_ms: lat(gs, "p50"),
                    p99_ms: lat(gs, "p99"),
                    errors: errs(gs),
                    rounds: gs,
                });
            }
        }
        const doc = {
            tessera_version: e.TESSERA_VERSION,
            oidc_provider_version: e.PEER_VERSION,
            sqlite_driver: e.SQLITE_DRIVER || null,
            node_version: process.version,
            cpus: os.cpus().length,
            concurrency: Number(e.CONCURRENCY),
            warmup_s: Number(e.WARMUP),
            duration_s: Number(e.DURATION),
            rounds,
            peer_workers_sqlite: Number(e.PEER_WORKERS),
            targets: Object.fromEntries(targets.map((t, i) => [t, descs[i]])),
            sqlite_peer_rows: e.SQLITE_ROWS ? JSON.parse(e.SQLITE_ROWS) : null,
            results,
            ratios,
            failed_requests: e.FAILED !== "0",
        };
        fs.writeFileSync(process.argv[1], JSON.stringify(doc, null, 2) + "\n");
        console.error(`==> figures written to ${process.argv[1]}`);
    }' "$json_out" || die "could not summarise the runs"

if [[ $failed -ne 0 ]]; then
    echo
    echo "!!! the load generator reported failed requests (see above)" >&2
    exit 1
fi
