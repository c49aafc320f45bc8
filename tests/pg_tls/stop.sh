#!/usr/bin/env bash
# Stops the TLS-only PostgreSQL of start.sh and removes its directory (PG_TLS_DIR, default as
# in start.sh); nothing to do when none runs.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dir="${PG_TLS_DIR:-/tmp/hookd-pg-tls-$(printf '%s' "$here" | cksum | cut -d' ' -f1)}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"

if [ -f "$dir/data/postmaster.pid" ]; then
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop || true
  else
    "$bin/pg_ctl" -D "$dir/data" -m fast -w stop || true
  fi
fi
rm -rf "$dir"
