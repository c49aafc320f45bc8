#!/usr/bin/env bash
# Counts PostgreSQL statements per published event for an in-process hookd-bench scenario
# (issue 28): calls of each statement over the throughput phase, divided by its events, with
# the server's time in each: executing (ms per call, µs per event) and planning (plans made:
# 1 per connection when the prepared statement's generic plan is reused; counted only with
# pg_stat_statements.track_planning = on). Times are wall-clock, lock waits included, not
# CPU, and leave out the executor's start-up and end (a large part of a one-event publish
# call: see docs/performance.md, 2026-12-07 later).
#
#   bench/pg_calls.sh SCENARIO [EVENTS]      e.g. bench/pg_calls.sh e2e-2nodes 20000
#
# Needs a PostgreSQL server of its own (PGCALLS_URL, default postgres://postgres@127.0.0.1:5433/postgres)
# with shared_preload_libraries=pg_stat_statements: the counters are server-wide and are reset
# at the start. Snapshots are taken every 0.5 s, so the latency phase that follows the
# throughput phase is left out. BENCH_BIN chooses the bench binary (default target/release).
set -euo pipefail
scenario=${1:?usage: bench/pg_calls.sh SCENARIO [EVENTS]}
events=${2:-20000}
url=${PGCALLS_URL:-postgres://postgres@127.0.0.1:5433/postgres}
bench=${BENCH_BIN:-target/release/hookd-bench}
out=$(mktemp -d)
q() { PGOPTIONS='-c client_min_messages=warning' psql "$url" -qAtX "$@"; }
q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
q -c "DROP TABLE IF EXISTS pg_calls_snap" \
  -c "CREATE TABLE pg_calls_snap (at timestamptz, queryid bigint, calls bigint, rows bigint, \
        exec_ms double precision, plans bigint, query text)" \
  -c "SELECT pg_stat_statements_reset()" >/dev/null
snapshot="INSERT INTO pg_calls_snap SELECT clock_timestamp(), queryid, calls, rows, \
  total_exec_time, plans, query \
  FROM pg_stat_statements WHERE query NOT LIKE '%pg_calls_snap%' AND calls > 50"
( while true; do q -c "$snapshot" >/dev/null 2>&1 || true; sleep 0.5; done ) &
snapper=$!
trap 'kill $snapper 2>/dev/null || true; rm -rf "$out"' EXIT
"$bench" --backend postgres --postgres-url "$url" --events "$events" --out "$out" "$scenario" >"$out/log" 2>&1
kill $snapper 2>/dev/null || true
wait $snapper 2>/dev/null || true
q -c "$snapshot" >/dev/null
start=$(grep -oE '"started_at":"[^"]*"' "$out/log" | head -1 | cut -d'"' -f4)
took=$(grep -oE '"deliver_s":[0-9.]*' "$out/log" | head -1 | cut -d: -f2)
grep -oE '"(deliveries_per_s|cpu_us_per_event_hookd|cpu_us_per_event_postgres|problems)":[^,]*' "$out/log" | tr '\n' ' '
echo
echo "calls/event  calls  rows  ms/call  µs/event  plans  statement (throughput phase, $events events)"
q -F $'\t' -c "WITH s AS (SELECT DISTINCT ON (queryid) * FROM pg_calls_snap \
    WHERE at <= '$start'::timestamptz + interval '$took seconds' + interval '2 seconds' ORDER BY queryid, at DESC) \
  SELECT round(calls::numeric / $events, 3), calls, rows, round((exec_ms / calls)::numeric, 3), \
    round((1000 * exec_ms / $events)::numeric, 1), plans, left(regexp_replace(query, '\s+', ' ', 'g'), 100) \
  FROM s WHERE calls > $events / 100 ORDER BY calls DESC"
