#!/usr/bin/env bash
# The health query's plan with 1M attempts, on both backends (issue 23, CONTRACT §7.7).
#
# Loads 1,000,000 attempts spread over 100 webhooks and 48 hours (so a webhook's 24-hour
# window is ~5,000 of them), then prints EXPLAIN (SQLite: EXPLAIN QUERY PLAN; PostgreSQL:
# EXPLAIN ANALYZE, BUFFERS) of the very statement hookd runs (`store::*::portal::SAMPLES_SQL`)
# and its time. Needs `sqlite3`, `psql` and a built `hookd` (for the schema).
#
#   bench/plans/health_plan.sh [sqlite|postgres|both]   (PG: HOOKD_TEST_POSTGRES_URL or local trust)
set -euo pipefail
cd "$(dirname "$0")/../.."
HOOKD=${HOOKD:-target/debug/hookd}
WHICH=${1:-both}
N=${N:-1000000}
NOW_MS=$(( $(date +%s) * 1000 ))
SINCE=$(( NOW_MS - 86400000 ))
UNTIL=$(( NOW_MS + 1 ))

# Attempt i: delivery i/3 (three attempts each), webhook (i/3) % 100, spread over 48 h.
load_common() { cat <<SQL
INSERT INTO merchants (id, code, created_at) $1 VALUES (1, 'plan', 0);
SQL
}

if [[ $WHICH == sqlite || $WHICH == both ]]; then
  DIR=$(mktemp -d); DB=$DIR/plan.db
  HOOKD_DATABASE_URL="sqlite://$DB" "$HOOKD" migrate >/dev/null 2>&1
  sqlite3 -bail "$DB" <<SQL
PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;
$(load_common "")
WITH RECURSIVE d(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM d WHERE i < $N / 3)
INSERT INTO deliveries (id, webhook_id, merchant_id, increment_id, topic, body, status, attempts, next_attempt_at, created_at)
SELECT i + 1, i % 100 + 1, 1, i / 100 + 1, 'order:created', x'7b7d', 'success', 3, 0, $NOW_MS - 172800000 + i * 3 * 172800 / ($N / 1000) FROM d;
WITH RECURSIVE a(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM a WHERE i < $N - 1)
INSERT INTO delivery_attempts (delivery_id, attempt_no, request, attempted_at, http_status, duration_ms, response_prefix, webhook_id)
SELECT i / 3 + 1, i % 3 + 1, 0, $NOW_MS - 172800000 + i * 172800 / ($N / 1000), CASE WHEN i % 10 = 0 THEN 500 ELSE 200 END, i % 997, '', (i / 3) % 100 + 1 FROM a;
ANALYZE;
SQL
  echo "== SQLite, $(sqlite3 "$DB" 'SELECT count(*) FROM delivery_attempts') attempts"
  Q="SELECT attempted_at, http_status, duration_ms FROM delivery_attempts WHERE webhook_id = 42 AND attempted_at >= $SINCE AND attempted_at < $UNTIL ORDER BY attempted_at DESC LIMIT 100000"
  sqlite3 "$DB" "EXPLAIN QUERY PLAN $Q"
  printf '.timer on\nSELECT count(*) FROM (%s);\nSELECT count(*) FROM (%s);\n' "$Q" "$Q" | sqlite3 "$DB"
  rm -rf "$DIR"
fi

if [[ $WHICH == postgres || $WHICH == both ]]; then
  BASE=${HOOKD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  NAME=hookd_plan_$$
  psql -q "$BASE" -c "CREATE DATABASE $NAME" >/dev/null
  URL=${BASE%/*}/$NAME
  trap 'psql -q "$BASE" -c "DROP DATABASE IF EXISTS $NAME" >/dev/null' EXIT
  HOOKD_DATABASE_URL="$URL" "$HOOKD" migrate >/dev/null 2>&1
  psql -q -v ON_ERROR_STOP=1 "$URL" <<SQL
$(load_common "OVERRIDING SYSTEM VALUE")
INSERT INTO deliveries (id, webhook_id, merchant_id, increment_id, topic, body, status, attempts, next_attempt_at, created_at)
OVERRIDING SYSTEM VALUE SELECT i + 1, i % 100 + 1, 1, i / 100 + 1, 'order:created', '\x7b7d', 'success', 3, 0, $NOW_MS - 172800000 + i::bigint * 3 * 172800 / ($N / 1000)
FROM generate_series(0, $N / 3) AS i;
INSERT INTO delivery_attempts (delivery_id, attempt_no, request, attempted_at, http_status, duration_ms, response_prefix, webhook_id)
SELECT i / 3 + 1, i % 3 + 1, 0, $NOW_MS - 172800000 + i::bigint * 172800 / ($N / 1000), CASE WHEN i % 10 = 0 THEN 500 ELSE 200 END, i % 997, '', (i / 3) % 100 + 1
FROM generate_series(0, $N - 1) AS i;
VACUUM ANALYZE delivery_attempts;
SQL
  echo "== PostgreSQL, $(psql -qtA "$URL" -c 'SELECT count(*) FROM delivery_attempts') attempts"
  psql -qtA "$URL" -c "EXPLAIN (ANALYZE, BUFFERS) SELECT attempted_at, http_status, duration_ms FROM delivery_attempts WHERE webhook_id = 42 AND attempted_at >= $SINCE AND attempted_at < $UNTIL ORDER BY attempted_at DESC LIMIT 100000"
fi
