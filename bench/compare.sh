#!/usr/bin/env bash
# Side by side: Tessera vs node-oidc-provider on the same machine and workload (issue 5,
# DESIGN.md §7 "side by side: ≥ 10× node-oidc-provider").
#
#   bench/compare.sh [--duration S] [--concurrency C] [--warmup S] [--no-build]
#
# 1. Builds Tessera and the load generator (release), starts `tessera serve` on a free loopback
#    port in a temporary directory (SQLite, durable: every rotation is committed and fsync'd), and
#    creates the bench client and user with the CLI.
# 2. Installs node-oidc-provider (the major pinned in bench/oidc-provider/package.json) into a
#    temporary folder and starts bench/oidc-provider/server.mjs on another free loopback port,
#    configured like Tessera: RT rotation on every use, offline_access RTs, ES256 JWT access tokens
#    (300 s), client_credentials, client_secret_basic, token endpoint at /token.
#    Persistence: oidc-provider's default in-memory adapter. Nothing reaches a disk, which favours
#    the peer (Tessera fsyncs every rotation).
#    Initial RTs: oidc-provider has no password grant, so server.mjs registers a grant type
#    "password" for benchmarking only (registerGrantType) that issues an offline_access Grant, an
#    access token and a RefreshToken through oidc-provider's own models. The generator therefore
#    sends both servers the same requests; the refresh_token grant it measures is oidc-provider's own.
#    (The password grant only starts chains and is not measured.)
# 3. Runs `tessera-bench refresh` and `tessera-bench client-credentials` against both servers, one
#    after the other, with the same options, and prints a table.
#
# Exits non-zero when the generator reported failed requests (or anything else went wrong).
# Both servers are stopped and the temporary directories removed on exit.
# Loopback only; the npm registry must be reachable for the install.
set -euo pipefail

duration=10
concurrency=32
warmup=2
build=1

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
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
        --no-build) build=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ "$duration" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--duration must be a number of seconds, got '$duration'"
[[ "$warmup" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--warmup must be a number of seconds, got '$warmup'"
[[ "$concurrency" =~ ^[1-9][0-9]*$ ]] || die "--concurrency must be a positive integer, got '$concurrency'"

for tool in cargo node npm curl; do
    command -v "$tool" >/dev/null || die "'$tool' is needed but not on PATH"
done

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"
peer_dir="$bench_dir/oidc-provider"

# ---------------------------------------------------------------- clean-up
work="$(mktemp -d "${TMPDIR:-/tmp}/tessera-compare.XXXXXX")"
tessera_pid=""
peer_pid=""
generator_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "$generator_pid" "$tessera_pid" "$peer_pid"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "$generator_pid" "$tessera_pid" "$peer_pid"; do
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
    rm -rf "$work"
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
peer_spec="$(json "$peer_dir/package.json" 'j.dependencies["oidc-provider"]')"
[[ -n "$peer_spec" ]] || die "no oidc-provider dependency in $peer_dir/package.json"
echo "==> installing oidc-provider@$peer_spec into $work/npm" >&2
mkdir -p "$work/npm"
npm install --prefix "$work/npm" --no-save --no-audit --no-fund --loglevel=error \
    "oidc-provider@$peer_spec" >"$work/npm/install.log" 2>&1 || {
    cat "$work/npm/install.log" >&2
    die "npm install oidc-provider@$peer_spec failed (is the npm registry reachable?)"
}
peer_version="$(json "$work/npm/node_modules/oidc-provider/package.json" 'j.version')"

peer_port="$(free_port)"
[[ "$peer_port" != "$tessera_port" ]] || peer_port="$(free_port)"
peer_url="http://127.0.0.1:$peer_port"
peer_secret="$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
echo "==> starting oidc-provider $peer_version on $peer_url (in-memory adapter)" >&2
PEER_PORT="$peer_port" BENCH_CLIENT_ID=bench BENCH_CLIENT_SECRET="$peer_secret" \
    BENCH_USERNAME=bench BENCH_PASSWORD=bench-password NODE_ENV=production \
    OIDC_PROVIDER_MODULES="$work/npm/node_modules" \
    node "$peer_dir/server.mjs" >"$work/npm/server.log" 2>&1 &
peer_pid=$!
wait_http "oidc-provider" "$peer_pid" "$peer_url/.well-known/openid-configuration" "$work/npm/server.log"

# ---------------------------------------------------------------- 3. the runs
# Percentage of CPU time busy over one second, machine-wide: both servers should be idle between
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
# run NAME SCENARIO URL SECRET: the generator's JSON goes to $work/NAME-SCENARIO.json.
run() {
    local name="$1" scenario="$2" url="$3" secret="$4" out="$work/$1-$2.json" rc=0
    if [[ -r /proc/stat ]]; then
        local busy
        busy="$(cpu_busy)"
        if [[ "$busy" -gt 20 ]]; then
            echo "!!! warning: the machine is ${busy}% busy before this run: something else is" \
                "running, and the figures will be skewed" >&2
        fi
    fi
    echo "==> tessera-bench $scenario against $name ($url): ${warmup}s warm-up + ${duration}s, $concurrency connections" >&2
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
        echo "!!! $name/$scenario: $errors failed requests; first: $(json "$out" 'j.first_error')" >&2
        failed=1
    fi
    for pid in "$tessera_pid" "$peer_pid"; do
        kill -0 "$pid" 2>/dev/null || die "a server died during the $name/$scenario run"
    done
}

for scenario in refresh client-credentials; do
    run tessera "$scenario" "$tessera_url" "$tessera_secret"
    run oidc-provider "$scenario" "$peer_url" "$peer_secret"
done

# ---------------------------------------------------------------- the table
echo
echo "Tessera $("$tessera" --version 2>/dev/null | awk '{print $NF}') vs node-oidc-provider $peer_version" \
    "(node $(node --version)), $(nproc) CPUs, ${concurrency} connections, ${warmup}s warm-up + ${duration}s per run"
echo "Tessera: SQLite, durable (fsync'd group commit). oidc-provider: default in-memory adapter" \
    "(nothing on disk; favours the peer), one node process."
echo
printf '%-20s %12s %12s %9s %10s %10s %10s %10s %7s\n' \
    scenario "Tessera/s" "peer/s" "ratio" "T p50 ms" "T p99 ms" "P p50 ms" "P p99 ms" errors
for scenario in refresh client-credentials; do
    t="$work/tessera-$scenario.json"
    p="$work/oidc-provider-$scenario.json"
    t_rps="$(json "$t" 'j.throughput')"
    p_rps="$(json "$p" 'j.throughput')"
    ratio="$(node -e 'const [t, p] = process.argv.slice(1).map(Number);
        console.log(p > 0 ? (t / p).toFixed(1) + "x" : "n/a")' "$t_rps" "$p_rps")"
    printf '%-20s %12.0f %12.0f %9s %10.2f %10.2f %10.2f %10.2f %7s\n' "$scenario" \
        "$t_rps" "$p_rps" "$ratio" \
        "$(json "$t" 'j.latency_ms.p50')" "$(json "$t" 'j.latency_ms.p99')" \
        "$(json "$p" 'j.latency_ms.p50')" "$(json "$p" 'j.latency_ms.p99')" \
        "$(json "$t" 'j.errors')/$(json "$p" 'j.errors')"
done

if [[ $failed -ne 0 ]]; then
    echo
    echo "!!! the load generator reported failed requests (see above)" >&2
    exit 1
fi
