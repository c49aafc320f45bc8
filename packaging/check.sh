#!/usr/bin/env bash
# Builds the Debian package with cargo-deb, installs it on this machine with dpkg, and tries it:
# `hookd --version`, `systemd-analyze verify` on the installed unit, and one start of the
# packaged binary with the packaged config as the unit's ExecStart runs it (a plain process:
# CI has no systemd as PID 1), answering the JSON-RPC empty-body probe with -32600. The package
# (and the state directory, when this made it) is removed again however this ends.
# Run as root on Debian, from anywhere: packaging/check.sh (HOOKD_DEB=FILE: try that package).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0

# Nothing of a real installation is touched: refuse to run beside one.
if dpkg-query -W -f='${Status}' hookd 2>/dev/null | grep -q 'installed'; then
  echo "packaging/check.sh: the hookd package is installed here; not replacing it" >&2
  exit 1
fi
if [ -e /var/lib/hookd ]; then
  echo "packaging/check.sh: /var/lib/hookd exists; not running beside it" >&2
  exit 1
fi

if [ "$(cargo deb --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
  cargo install -j2 --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
command -v systemd-analyze >/dev/null || {
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q systemd
}

# HOOKD_DEB names a package built already (to try one without building it again).
if [ -n "${HOOKD_DEB:-}" ]; then
  deb=$HOOKD_DEB
else
  cargo build -j2 --release --locked
  deb=$(cargo deb --no-build | tail -n 1)
fi
echo "built $deb ($(du -h "$deb" | cut -f1))"

work=$(mktemp -d)
pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  dpkg --purge hookd >/dev/null || true
  rm -rf /var/lib/hookd "$work"
}
trap cleanup EXIT

dpkg -i "$deb"
version=$(hookd --version)
want="hookd $(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "hookd"))')"
[ "$version" = "$want" ] || { echo "hookd --version said '$version', not '$want'" >&2; exit 1; }
echo "hookd --version: $version"

unit=$(dpkg -L hookd | grep '/systemd/system/hookd\.service$')
systemd-analyze verify "$unit"
echo "systemd-analyze verify $unit: ok"
for f in /etc/hookd/hookd.toml /etc/default/hookd; do
  dpkg-query --showformat='${Conffiles}\n' --show hookd | grep -q " $f " || {
    echo "$f is not a conffile" >&2; exit 1; }
done

# As systemd would start it: the unit's ExecStart in a clean environment, the state directory
# made beforehand (StateDirectory=), the environment file's variables (none set by default),
# and only the address overridden (the environment wins over the config file).
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
mkdir -m 0700 /var/lib/hookd
# shellcheck disable=SC2086 # ExecStart's words, as systemd splits them
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -c \
  'set -a; . /etc/default/hookd; HOOKD_LISTEN=127.0.0.1:0; exec "$@"' hookd $exec_start 2>"$work/log" &
pid=$!
addr=
for _ in $(seq 1 100); do
  addr=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$work/log" | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$addr" ] || { echo "the packaged hookd did not start:" >&2; cat "$work/log" >&2; exit 1; }
answer=$(curl -sS -X POST -H 'Content-Type: application/json' --data-binary '' "http://$addr/api/jsonrpc")
echo "empty-body probe at $addr: $answer"
python3 -c 'import json,sys; a = json.loads(sys.argv[1]); assert a["error"]["code"] == -32600, a' "$answer"
[ -f /var/lib/hookd/hookd.db ] || { echo "no database in /var/lib/hookd" >&2; exit 1; }
kill -TERM "$pid"
wait "$pid" || { echo "hookd exited with $? on SIGTERM" >&2; cat "$work/log" >&2; exit 1; }
pid=
echo "packaged hookd started with /etc/hookd/hookd.toml, answered, and stopped on SIGTERM"
