#!/usr/bin/env python3
"""Instruction counts of the publish+deliver path on SQLite: starts `hookd serve` under
callgrind on a fresh database, makes one webhook (with EXTRA_HEADERS) at a receiver in this
script, publishes N events of `order:created` in JSON-RPC batches of 50, waits until the
receiver has them all, then stops hookd, which writes OUTDIR/callgrind.out.
HOOKD_CALLGRIND_DATABASE_URL, when set, is the database instead (an empty PostgreSQL one, say).
HOOKD_CALLGRIND_BATCH=1 publishes one event per request instead, 8 requests at a time (the
single-event shape of `hookd-bench e2e`). HOOKD_CALLGRIND_KEEPALIVE=1 makes the receiver answer
in HTTP/1.1 and keep connections open, as `hookd-bench`'s does (by default it answers in
HTTP/1.0, so every attempt opens a connection; earlier counts were taken that way). TOGGLE limits the
count to a function (default: the SQLite outcome write, `store::sqlite::queue::record`);
`all` counts the whole process. Instruction counts do not depend on the machine's load, so
two builds can be compared on a busy machine (run both, divide by the attempts logged).

  bench/callgrind/publish_deliver.py HOOKD_BIN OUTDIR N EXTRA_HEADERS [PORT] [TOGGLE]
"""
import base64, http.server, json, os, signal, subprocess, sys, threading, time, urllib.request

hookd, out, n, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
port = int(sys.argv[5]) if len(sys.argv) > 5 else 18733
toggle = sys.argv[6] if len(sys.argv) > 6 else "*store::sqlite::queue::record*"
os.makedirs(out, exist_ok=True)
database = os.environ.get("HOOKD_CALLGRIND_DATABASE_URL", f"sqlite://{out}/hookd.db")
env = dict(os.environ, HOOKD_DATABASE_URL=database, HOOKD_LISTEN=f"127.0.0.1:{port}",
           HOOKD_ALLOW_PRIVATE_TARGETS="true", RUST_LOG="warn")
def cli(*a):
    return subprocess.run([hookd, *a], env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
admin = cli("user", "add", "adm", "--admin")
shop = cli("user", "add", "shopuser", "--merchant", "shop")

got = [0]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        got[0] += 1
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
if os.environ.get("HOOKD_CALLGRIND_KEEPALIVE") == "1":
    H.protocol_version = "HTTP/1.1"
http.server.ThreadingHTTPServer.daemon_threads = True
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port + 1), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()

p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.out",
                      *([f"--toggle-collect={toggle}"] if toggle != "all" else []),
                      hookd, "serve"], env=env, stderr=open(f"{out}/serve.log", "w"))
def rpc(user, key, method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "call", "params": [None, method, params]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/jsonrpc", body, {"Content-Type": "application/json",
        "Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()})
    return json.load(urllib.request.urlopen(req, timeout=60))
def batch(user, key, calls):
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "call", "params": [None, m, a]} for i, (m, a) in enumerate(calls)]).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/jsonrpc", body, {"Content-Type": "application/json",
        "Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()})
    return json.load(urllib.request.urlopen(req, timeout=120))
import atexit
atexit.register(lambda: p.poll() is None and p.kill())
deadline = time.time() + 120
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5); break
    except Exception:
        assert time.time() < deadline; time.sleep(0.5)
r = rpc("shopuser", shop, "webhook.create", [{"topics": "order:created", "url": f"http://127.0.0.1:{port + 1}/h", "extra_headers": extra}])
assert r.get("result") is True, r
t0 = time.time()
per_request = int(os.environ.get("HOOKD_CALLGRIND_BATCH", "50"))
if per_request == 1:
    from concurrent.futures import ThreadPoolExecutor
    def one(i):
        r = rpc("adm", admin, "event.publish", ["order:created", {"order_id": i + 1}])
        assert "result" in r, r
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))
else:
    for i in range(0, n, per_request):
        calls = [("event.publish", ["order:created", {"order_id": i + j + 1}]) for j in range(per_request)]
        r = batch("adm", admin, calls)
        assert all("result" in x for x in r), r[:2]
while got[0] < n:
    assert time.time() - t0 < 600, got
    time.sleep(0.2)
time.sleep(1)
p.send_signal(signal.SIGTERM)
p.wait(timeout=120)
print("received", got[0])
