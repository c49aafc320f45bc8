#!/usr/bin/env bash
# Loads a separately started `hookd serve` from another process (issue 28): starts hookd on a
# fresh database, makes the bench's users with the CLI, runs hookd-bench --external against
# it (hookd's CPU read from its pid, PostgreSQL's from its database's backends), stops it.
#
#   bench/external.sh sqlite   [hookd-bench args…]      e.g. bench/external.sh sqlite e2e
#   bench/external.sh postgres [hookd-bench args…]      (HOOKD_BENCH_POSTGRES_URL, default local)
#   HOOKD_BENCH_NODES=2 bench/external.sh postgres e2e  two nodes on one database, with peer
#                                                       links, the requests to each in turn
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
nodes=${HOOKD_BENCH_NODES:-1}
work=$(mktemp -d)
db_name="hookd_ext_$$_$RANDOM"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
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
case "$nodes" in
  1) ;;
  2) [ "$backend" = postgres ] || { echo "two nodes need postgres" >&2; exit 2; } ;;
  *) echo "HOOKD_BENCH_NODES: 1 or 2" >&2; exit 2 ;;
esac
admin_key=$("$hookd" user add --admin bench-admin 2>/dev/null)
merchant_key=$("$hookd" user add --merchant bench bench-shop 2>/dev/null)
# The bench's receiver listens on 127.0.0.1, so private targets are allowed; the retry
# schedule is short so a failed attempt comes back within the run (as in-process). Node N
# serves on port + N; with two nodes each also takes peer links on port + 100 + N.
urls=()
for n in $(seq 0 $((nodes - 1))); do
  peer=()
  [ "$nodes" -gt 1 ] && peer=(env "HOOKD_PEER_LISTEN=127.0.0.1:$((port + 100 + n))")
  HOOKD_LISTEN="127.0.0.1:$((port + n))" HOOKD_ALLOW_PRIVATE_TARGETS=true HOOKD_RETRY_SCHEDULE="1s,1s,2s,2s,5s" \
    "${peer[@]}" "$hookd" serve >"$work/hookd-$n.log" 2>&1 &
  pids+=($!)
  urls+=("http://127.0.0.1:$((port + n))")
done
for n in "${!pids[@]}"; do
  for _ in $(seq 100); do
    curl -fs "${urls[$n]}/readyz" >/dev/null 2>&1 && break
    kill -0 "${pids[$n]}" 2>/dev/null || { cat "$work/hookd-$n.log" >&2; exit 2; }
    sleep 0.1
  done
done
if [ "$nodes" -gt 1 ]; then
  # Both nodes in the peers table, then one beat (2 s) more, so that each has read the other.
  seen=0
  for _ in $(seq 100); do
    seen=$(psql "$HOOKD_DATABASE_URL" -qAtc "SELECT count(*) FROM peers")
    [ "$seen" = "$nodes" ] && break
    sleep 0.1
  done
  [ "$seen" = "$nodes" ] || { echo "the nodes did not record themselves as peers within 10 s" >&2; exit 2; }
  sleep 2.5
fi
HOOKD_BENCH_ADMIN="bench-admin:$admin_key" HOOKD_BENCH_MERCHANT="bench-shop:$merchant_key" \
  "$bench" --external "$(IFS=,; echo "${urls[*]}")" --external-pid "$(IFS=,; echo "${pids[*]}")" "${extra[@]}" "$@"
if [ "$nodes" -gt 1 ]; then
  # How many publishes each node forwarded to the merchant's owner (about half of all, when
  # the peer links work); none at all means they did not, and the figures are not two
  # nodes with peer links.
  forwarded=0
  for url in "${urls[@]}"; do
    counters=$(curl -fs "$url/metrics" | grep -E '^hookd_peer_publishes_(forwarded|taken)_total')
    echo "$url: $(echo "$counters" | tr '\n' ' ')"
    forwarded=$((forwarded + $(echo "$counters" | awk '/forwarded/ {print int($2)}')))
  done
  [ "$forwarded" -gt 0 ] || { echo "two nodes: no publish was forwarded (peer links down?)" >&2; exit 1; }
fi
if [ "$backend" = postgres ]; then
  # The database's transactions and row changes over the whole run (set-up included), to
  # divide by the events published: what each event costs PostgreSQL in work, whatever the load.
  sleep 1
  psql "$admin_url" -Atc "SELECT 'pg_stat_database: xact_commit=' || xact_commit || ' xact_rollback=' || xact_rollback \
    || ' tup_inserted=' || tup_inserted || ' tup_updated=' || tup_updated || ' tup_fetched=' || tup_fetched \
    FROM pg_stat_database WHERE datname = '$db_name'"
fi
