#!/usr/bin/env bash
# Times one call of hookd's one-round-trip publish (`src/store/postgres/batch/unfiltered.rs`:
# a call of the function `hookd_publish`, migration 0023) on its own, without the rest of
# hookd and without its noise (issue 28): the statement as
# hookd sent it, captured by auto_explain in the server's log, replayed by pgbench on one
# connection, prepared (generic plan), committing without waiting for the flush as a runner
# sharing its webhooks does. Prints the client's latency per call and the server's execution
# time per call (pg_stat_statements, which leaves out executor start-up and end).
#
#   bench/pg_replay.sh [EVENTS] [CALLS]                   e.g. bench/pg_replay.sh 11 2000
#   STATEMENT=variant.sql bench/pg_replay.sh 1 4000       time a variant ($1 … $23 as captured)
#
# Needs a PostgreSQL server of its own (PGREPLAY_URL, default
# postgres://postgres@127.0.0.1:5433/postgres; superuser) with
# shared_preload_libraries=pg_stat_statements, its log file readable here (PGREPLAY_LOG,
# default /tmp/pgc/log), and pgbench. Makes a scratch database, hookd_replay, holding one
# merchant with its user and one webhook (`order:*`), and a publisher (whose remembered key
# each call checks, as a Basic-auth publish does); each call adds an event and a payload.
# HOOKD_BIN chooses hookd (default target/release/hookd); the captured statement is kept in
# PGREPLAY_SAVE (default /tmp/hookd_publish_statement.sql), a starting point for variants.
set -euo pipefail
events=${1:-1}
calls=${2:-2000}
url=${PGREPLAY_URL:-postgres://postgres@127.0.0.1:5433/postgres}
log=${PGREPLAY_LOG:-/tmp/pgc/log}
hookd=${HOOKD_BIN:-target/release/hookd}
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -n 1)
db_url=${url%/*}/hookd_replay
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
q() { PGOPTIONS='-c client_min_messages=warning' psql "$1" -qAtX "${@:2}"; }

if [ -z "${STATEMENT:-}" ] || [ "$(q "$url" -c "SELECT count(*) FROM pg_database WHERE datname = 'hookd_replay'")" = 0 ]; then
  q "$url" -c "DROP DATABASE IF EXISTS hookd_replay WITH (FORCE)" -c "CREATE DATABASE hookd_replay"
  key=$(HOOKD_DATABASE_URL=$db_url "$hookd" user add shop1 --merchant shop1 2>/dev/null | tail -n 1)
  pub=$(HOOKD_DATABASE_URL=$db_url "$hookd" user add platform --publisher 2>/dev/null | tail -n 1)
  # Log every statement's plan in this database only, for one publish.
  q "$url" -c "LOAD 'auto_explain'" \
    -c "ALTER DATABASE hookd_replay SET session_preload_libraries = 'auto_explain'" \
    -c "ALTER DATABASE hookd_replay SET auto_explain.log_min_duration = 0"
  port=${PGREPLAY_PORT:-18089}
  HOOKD_DATABASE_URL=$db_url HOOKD_ALLOW_PRIVATE_TARGETS=1 "$hookd" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
  serve=$!
  for ((tries = 0; ; tries++)); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    [ "$tries" -lt 300 ] || { echo "hookd did not start; its log:" >&2; cat "$work/serve.log" >&2; exit 1; }
    sleep 0.1
  done
  rpc() { curl -sS "http://127.0.0.1:$port/api/jsonrpc" -H 'Content-Type: application/json' -d "$@"; }
  sid=$(rpc "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"login\",\"params\":[\"shop1\",\"$key\"]}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["result"])')
  rpc "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"call\",\"params\":[\"$sid\",\"webhook.create\",
    [{\"topics\":\"order:*\",\"url\":\"http://127.0.0.1:9/hook\",\"secret_key\":\"2RUJ8NXLnLRrAj3\"}]]}" >/dev/null
  from=$(wc -c <"$log")
  rpc '{"jsonrpc":"2.0","id":3,"method":"call","params":[null,"event.publish",["order:created",{"order_id":1}]]}' \
    -u "platform:$pub" >/dev/null
  kill "$serve" && wait "$serve" 2>/dev/null || true
  q "$url" -c "ALTER DATABASE hookd_replay RESET ALL"
  { tail -c +"$((from + 1))" "$log" | grep -m 1 -o 'Query Text: SELECT \* FROM hookd_publish(.*' || true; } | cut -c 13- >"$work/captured.sql"
  [ -s "$work/captured.sql" ] || { echo "no publish statement in $log" >&2; exit 1; }
  cp "$work/captured.sql" "${PGREPLAY_SAVE:-/tmp/hookd_publish_statement.sql}"
fi
statement=${STATEMENT:-${PGREPLAY_SAVE:-/tmp/hookd_publish_statement.sql}}
# pgbench passes each :pN as the prepared statement's parameter $N.
python3 - "$statement" "$work/replay.sql" <<'EOF'
import re, sys
text = open(sys.argv[1]).read().strip().rstrip(';')
open(sys.argv[2], 'w').write(re.sub(r'\$(\d+)', r':p\1', text) + ';\n')
EOF
read -r caller hash < <(q "$db_url" -F ' ' -c "SELECT id, key_hash FROM users WHERE name = 'platform'")
merchant=$(q "$db_url" -c "SELECT id FROM merchants WHERE code = 'shop1'")
now=$(date +%s%3N)
each() { local out=$1; for ((k = 1; k < events; k++)); do out="$out,$1"; done; echo "{$out}"; }
q "$url" -c "SELECT pg_stat_statements_reset()" >/dev/null
PGOPTIONS='-c plan_cache_mode=force_generic_plan' "$pgbench" -n -M prepared -c 1 -t "$calls" -f "$work/replay.sql" \
  -D p1="$(each "$merchant")" -D p2="$(each order:created)" -D p3="$(each NULL)" -D p4="$(each "$now")" \
  -D p5="$(each f)" -D p6="$(each NULL)" -D p7="$(each NULL)" -D p8="$(each "$caller")" -D p9="$(each "\"$hash\"")" \
  -D p10="$(each order:created)" -D p11="$(each 'order:*')" -D p12="$(each '*')" \
  -D p13="$(each '"\\x7b226964223a"')" -D p14="$(each '"\\x7d"')" -D p15="$now" -D p16=hookd_replay \
  -D p17=7000 -D p18=replay -D p19="$((now + 600000))" -D p20=16 -D p21='{}' -D p22='{}' -D p23=true \
  "$db_url" 2>&1 | grep -E 'latency average|error' || true
q "$url" -F ' ' -c "SELECT 'server execution: ' || round(mean_exec_time::numeric, 4) || ' ms per call over ' || calls
  FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'hookd_replay')
  AND calls >= $calls / 2 ORDER BY calls DESC LIMIT 1"
