#!/usr/bin/env bash
# Loads a separately started `hookd serve` from another process (issue 28): starts hookd on a
# fresh database, makes the bench's users with the CLI, runs hookd-bench --external against
# it (hookd's CPU read from its pid, PostgreSQL's from its database's backends), stops it.
#
#   bench/external.sh sqlite   [hookd-bench args…]      e.g. bench/external.sh sqlite e2e
#   bench/external.sh postgres [hookd-bench args…]      (HOOKD_BENCH_POSTGRES_URL, default local)
#
# HOOKD_BIN and BENCH_BIN choose the binaries (default target/release/{hookd,hookd-bench}), so
# two builds can be compared in one window. Only publish, publish-batch, e2e, e2e-batch and
# latency run this way.
set -euo pipefail
backend=${1:?usage: bench/external.sh sqlite|postgres [hookd-bench args…]}
shift
hookd=${HOOKD_BIN:-target/release/hookd}
bench=${BENCH_BIN:-target/release/hookd-bench}
admin_url=${HOOKD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
port=${HOOKD_BENCH_PORT:-18080}
work=$(mktemp -d)
db_name="hookd_ext_$$_$RANDOM"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ "$backend" = postgres ]; then
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
case "$backend" in
  sqlite) export HOOKD_DATABASE_URL="sqlite://$work/hookd.db"; extra=() ;;
  postgres)
    psql "$admin_url" -qc "CREATE DATABASE \"$db_name\"" >/dev/null
    export HOOKD_DATABASE_URL="${admin_url%/*}/$db_name"
    extra=(--backend postgres --external-database "$db_name") ;;
  *) echo "backend: sqlite or postgres" >&2; exit 2 ;;
esac
admin_key=$("$hookd" user add --admin bench-admin 2>/dev/null)
merchant_key=$("$hookd" user add --merchant bench bench-shop 2>/dev/null)
# The bench's receiver listens on 127.0.0.1, so private targets are allowed; the retry
# schedule is short so a failed attempt comes back within the run (as in-process).
HOOKD_LISTEN="127.0.0.1:$port" HOOKD_ALLOW_PRIVATE_TARGETS=true HOOKD_RETRY_SCHEDULE="1s,1s,2s,2s,5s" \
  "$hookd" serve >"$work/hookd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/hookd.log" >&2; exit 2; }
  sleep 0.1
done
HOOKD_BENCH_ADMIN="bench-admin:$admin_key" HOOKD_BENCH_MERCHANT="bench-shop:$merchant_key" \
  "$bench" --external "http://127.0.0.1:$port" --external-pid "$pid" "${extra[@]}" "$@"
if [ "$backend" = postgres ]; then
  # The database's transactions and row changes over the whole run (set-up included), to
  # divide by the events published: what each event costs PostgreSQL in work, whatever the load.
  sleep 1
  psql "$admin_url" -Atc "SELECT 'pg_stat_database: xact_commit=' || xact_commit || ' xact_rollback=' || xact_rollback \
    || ' tup_inserted=' || tup_inserted || ' tup_updated=' || tup_updated || ' tup_fetched=' || tup_fetched \
    FROM pg_stat_database WHERE datname = '$db_name'"
fi
