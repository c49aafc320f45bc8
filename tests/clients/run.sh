#!/usr/bin/env bash
# The hand-written clients against a live hookd: clients/python (pytest) and clients/php
# (php-cli). Each test starts the debug binary itself (HOOKD_BIN, default target/debug/hookd,
# built here when missing) on port 0 with a temporary SQLite database.
set -euo pipefail
cd "$(dirname "$0")/../.."

export HOOKD_BIN="${HOOKD_BIN:-$PWD/target/debug/hookd}"
[ -x "$HOOKD_BIN" ] || cargo build -j2 --bin hookd

# The first python3 that has pytest (Debian's python3-pytest is for /usr/bin/python3).
python=""
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import pytest' 2>/dev/null; then python="$candidate"; break; fi
done
[ -n "$python" ] || { echo "no python3 with pytest (apt-get install python3-pytest)" >&2; exit 1; }

echo "== clients/python (pytest)"
"$python" -m pytest -q -p no:cacheprovider clients/python/tests
echo "== clients/php (php-cli)"
php clients/php/tests/live_test.php
