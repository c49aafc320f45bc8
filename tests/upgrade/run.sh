#!/usr/bin/env bash
# Rolling upgrade on PostgreSQL: the previous release's hookd (the git tag, default v0.1.0)
# beside this tree's, on ONE fresh database.
#   1. the old node alone: migrates, takes a webhook, delivers;
#   2. the new node starts beside it (applying the new migrations); events published through
#      both nodes are all delivered, once each, with gap-free increment ids;
#   3. the old node is restarted after the new one migrated: does it start on the newer schema?
#      (the finding is printed either way; an old release that refuses must refuse with sqlx's
#      "previously applied but is missing", nothing else); then every node up delivers again.
# Needs HOOKD_TEST_POSTGRES_URL (a server where it may create databases), git, curl, psql,
# python3. Usage: tests/upgrade/run.sh [TAG]. Timings are printed (CI cost).
# An old binary is told from the new by its path only: both say `hookd 0.1.0` until the version moves.
set -euo pipefail
cd "$(dirname "$0")/../.."
from="${1:-${HOOKD_UPGRADE_FROM:-v0.1.0}}"
: "${HOOKD_TEST_POSTGRES_URL:?set HOOKD_TEST_POSTGRES_URL (a PostgreSQL server where databases may be made)}"
t0=$SECONDS
up=target/upgrade
mkdir -p "$up"
up=$(realpath "$up")

# The old binary: the tag's tree in a git worktree, built (release) in a target dir of its own,
# seeded from this tree's release build so only what changed since is compiled.
# HOOKD_UPGRADE_OLD_BIN / HOOKD_UPGRADE_NEW_BIN name binaries built already instead.
old="${HOOKD_UPGRADE_OLD_BIN:-}"
if [ -z "$old" ]; then
  git rev-parse -q --verify "$from^{commit}" >/dev/null || git fetch -q --tags 2>/dev/null || true
  # A clone without tags still has the release's commit: tests/upgrade/releases names it.
  if ! git rev-parse -q --verify "$from^{commit}" >/dev/null; then
    commit=$(awk -v tag="$from" '$1 == tag { print $2 }' tests/upgrade/releases)
    [ -n "$commit" ] && git rev-parse -q --verify "$commit^{commit}" >/dev/null ||
      { echo "upgrade: no git tag or commit '$from' here (a clone without tags or history?)" >&2; exit 1; }
    echo "upgrade: no tag $from in this clone; using its commit $commit (tests/upgrade/releases)"
    from=$commit
  fi
  old_src="$up/src-$from"
  if [ ! -d "$old_src" ]; then
    git worktree prune
    git worktree add --detach --force "$old_src" "$from" >/dev/null
  fi
  [ -d "$up/target-old/release" ] || [ ! -d target/release ] ||
    { mkdir -p "$up/target-old" && cp -a --reflink=auto target/release "$up/target-old/"; }
  (cd "$old_src" && CARGO_TARGET_DIR="$up/target-old" cargo build -j2 --release --locked --bin hookd -q)
  old="$up/target-old/release/hookd"
fi
new="${HOOKD_UPGRADE_NEW_BIN:-}"
if [ -z "$new" ]; then
  cargo build -j2 --release --locked --bin hookd -q
  new="$PWD/target/release/hookd"
fi
echo "upgrade: built $("$old" --version) ($from) and $("$new" --version) (this tree) in $((SECONDS - t0)) s"

# A fresh database, dropped at the end; every process started here is stopped.
db="hookd_upgrade_$$"
admin_url="$HOOKD_TEST_POSTGRES_URL"
db_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$admin_url" "$db")
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
psql -q "$admin_url" -c "CREATE DATABASE $db" >/dev/null

export HOOKD_DATABASE_URL="$db_url" HOOKD_ALLOW_PRIVATE_TARGETS=1 HOOKD_POLL_INTERVAL=200ms \
  HOOKD_RETRY_SCHEDULE=200ms,500ms,1s HOOKD_DB_MAX_CONNECTIONS=4 HOOKD_LISTEN=127.0.0.1:0
secret=upgrade-test-secret

# Waits for "listening on ADDR" in a log, or for the process to end; prints ADDR or nothing.
addr_of() { # PID LOG
  for _ in $(seq 1 300); do
    a=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$2" | head -n 1)
    [ -n "$a" ] && { echo "$a"; return; }
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
}
start() { # NAME BINARY -> sets $pid and $addr; empty $addr when it did not start
  "$2" serve 2>"$work/$1.log" &
  pid=$!
  pids+=("$pid")
  addr=$(addr_of "$pid" "$work/$1.log")
}
rpc() { # ADDR USER KEY METHOD ARGS-JSON
  curl -sS -u "$2:$3" "http://$1/api/jsonrpc" -H 'Content-Type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"call\",\"params\":[null,\"$4\",$5]}"
}
ok() { python3 -c 'import json,sys; a = json.load(sys.stdin); assert a.get("error") is None, a; print(json.dumps(a["result"]))'; }
sent=0
publish() { # ADDR COUNT: events numbered on from $sent, each acknowledged, else fail
  python3 - "$1" "$admin_key" "$sent" "$2" <<'PY'
import base64, json, sys, urllib.request
addr, key, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
auth = "Basic " + base64.b64encode(f"admin:{key}".encode()).decode()
for n in range(first + 1, first + count + 1):
    body = {"jsonrpc": "2.0", "id": n, "method": "call",
            "params": [None, "event.publish", ["order:created", {"n": n}, {"merchant_code": "shop1"}]]}
    req = urllib.request.Request(f"http://{addr}/api/jsonrpc", json.dumps(body).encode(),
                                 {"Content-Type": "application/json", "Authorization": auth})
    answer = json.load(urllib.request.urlopen(req, timeout=30))
    assert answer.get("error") is None, (n, answer)
PY
  sent=$((sent + $2))
}
# Every event published so far arrived once, with ids 1..$sent, signed: else fail.
delivered() { # STEP
  for _ in $(seq 1 300); do
    [ "$(wc -l <"$work/received")" -ge "$sent" ] && break
    sleep 0.1
  done
  python3 - "$work/received" "$sent" "$1" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n, step = int(sys.argv[2]), sys.argv[3]
ids = sorted(l["increment_id"] for l in lines)
events = sorted(json.loads(l["body"])["message"]["n"] for l in lines)
assert ids == list(range(1, n + 1)), f"{step}: increment ids {ids}, expected 1..{n} once each"
assert events == list(range(1, n + 1)), f"{step}: events {events}, expected 1..{n} once each"
assert all(l["signature_ok"] for l in lines), f"{step}: a bad signature"
print(f"upgrade: {step}: {n} events delivered once each, increment ids 1..{n}")
PY
}

"$new" listen --listen 127.0.0.1:0 --secret "$secret" >"$work/received" 2>"$work/listen.log" &
pids+=($!)
receiver=$(addr_of $! "$work/listen.log")

# 1. The old release alone.
admin_key=$("$old" user add admin --admin 2>/dev/null | tail -n 1)
shop_key=$("$old" user add shop1 --merchant shop1 2>/dev/null | tail -n 1)
start old-a "$old"; old_pid=$pid; a=$addr
[ -n "$a" ] || { cat "$work/old-a.log"; exit 1; }
rpc "$a" shop1 "$shop_key" webhook.create \
  "[{\"topics\":\"order:*\",\"url\":\"http://$receiver/hook\",\"secret_key\":\"$secret\"}]" | ok >/dev/null
publish "$a" 20
delivered "old node alone"

# 2. The new node beside it (it migrates on start), publishing through both.
start new-b "$new"; b=$addr
[ -n "$b" ] || { cat "$work/new-b.log"; exit 1; }
publish "$a" 10; publish "$b" 10; publish "$a" 10; publish "$b" 10
delivered "old and new side by side"
versions=$(psql -qtA "$db_url" -c "SELECT string_agg(version::text, ',' ORDER BY version) FROM _sqlx_migrations")
echo "upgrade: migrations applied: $versions"

# 3. The old node restarted on the schema the new one migrated.
kill -TERM "$old_pid"; wait "$old_pid" || true
start old-a2 "$old"
if [ -n "$addr" ]; then
  echo "upgrade: FINDING: $from restarted after the new node migrated: it started, and serves"
  a=$addr
  publish "$a" 10; publish "$b" 10; publish "$a" 10; publish "$b" 10
else
  why=$(grep -m1 -o 'error: .*' "$work/old-a2.log" || tail -n 3 "$work/old-a2.log")
  echo "upgrade: FINDING: $from restarted after the new node migrated: it refused to start: $why"
  grep -q 'previously applied but is missing' "$work/old-a2.log" || {
    echo "upgrade: the old node failed otherwise than refusing the newer schema:" >&2
    cat "$work/old-a2.log" >&2
    exit 1
  }
  publish "$b" 20
fi
delivered "after restarting the old node"
echo "upgrade: done in $((SECONDS - t0)) s"
