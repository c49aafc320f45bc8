#!/usr/bin/env bash
# Starts a throwaway PostgreSQL that accepts only TLS connections, for tests/api/pg_tls.rs.
#
# Its own data directory and port; a CA and a server certificate made here with openssl. The
# server certificate names only `localhost` (no IP), so `verify-full` to 127.0.0.1 must fail.
# pg_hba.conf has `hostssl` lines only: a plain connection is refused.
#
# Prints the two variables the test reads, ready for `eval "$(tests/pg_tls/start.sh)"`:
#   HOOKD_TEST_PG_TLS_URL  postgres://hookd:PASSWORD@localhost:PORT/postgres (no sslmode)
#   HOOKD_TEST_PG_TLS_CA   the CA certificate's path
# Idempotent: a server already running from this directory is stopped and made afresh.
# Environment: PG_TLS_DIR (default /tmp/hookd-pg-tls-N, N from this checkout's path, so
# checkouts do not meet), PG_TLS_PORT (default the first free one from 55433).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dir="${PG_TLS_DIR:-/tmp/hookd-pg-tls-$(printf '%s' "$here" | cksum | cut -d' ' -f1)}"
password="tls-test-secret"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$bin/initdb" ] || { echo "start.sh: no PostgreSQL binaries under /usr/lib/postgresql" >&2; exit 1; }

# initdb refuses to run as root: the cluster belongs to `postgres` then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

PG_TLS_DIR="$dir" "$here/stop.sh" >/dev/null 2>&1 || true

port="${PG_TLS_PORT:-}"
if [ -z "$port" ]; then
  for candidate in $(seq 55433 55532); do
    (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null || { port=$candidate; break; }
  done
  [ -n "$port" ] || { echo "start.sh: no free port from 55433 to 55532" >&2; exit 1; }
fi
rm -rf "$dir"
mkdir -p "$dir/certs"
certs="$dir/certs"

{
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=hookd test CA" \
    -keyout "$certs/ca.key" -out "$certs/ca.crt"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$certs/server.key" -out "$certs/server.csr"
  printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    >"$certs/server.ext"
  openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" \
    -CAcreateserial -days 2 -extfile "$certs/server.ext" -out "$certs/server.crt"
} >/dev/null 2>&1
chmod 600 "$certs/server.key"
chmod 755 "$dir" "$certs"
chmod 644 "$certs/ca.crt" "$certs/server.crt"
[ "$(id -u)" = 0 ] && chown -R postgres: "$dir"

printf '%s\n' "$password" >"$dir/pwfile"
[ "$(id -u)" = 0 ] && chown postgres: "$dir/pwfile"
as_owner "$bin/initdb" -D "$dir/data" -U hookd --pwfile="$dir/pwfile" --auth=scram-sha-256 >/dev/null
rm -f "$dir/pwfile"

cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
ssl = on
ssl_cert_file = '$certs/server.crt'
ssl_key_file = '$certs/server.key'
CONF
cat >"$dir/data/pg_hba.conf" <<HBA
# TLS only: no 'host' or 'local' line, so a plain connection finds no entry.
hostssl all all 127.0.0.1/32 scram-sha-256
HBA

if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null; then
  tail -n 20 "$dir/server.log" >&2
  exit 1
fi

echo "export HOOKD_TEST_PG_TLS_URL='postgres://hookd:$password@localhost:$port/postgres'"
echo "export HOOKD_TEST_PG_TLS_CA='$certs/ca.crt'"
