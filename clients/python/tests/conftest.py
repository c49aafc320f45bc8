"""A live hookd for the tests: the debug binary (HOOKD_BIN, default target/debug/hookd of
the repository), on 127.0.0.1 port 0, with a SQLite database in a temporary directory and
private targets allowed (the receiver is on loopback); users made with `hookd user add`."""

import os
import pathlib
import queue
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

REPO = pathlib.Path(__file__).resolve().parents[3]


class Hookd:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.env = dict(
            os.environ,
            HOOKD_DATABASE_URL=f"sqlite://{workdir}/hookd.db",
            HOOKD_LISTEN="127.0.0.1:0",
            HOOKD_ALLOW_PRIVATE_TARGETS="1",
        )
        self.process = None
        self.base_url = None

    def run(self, *args):
        done = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"hookd {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    def user_add(self, name, *role):
        """A new user; its API key (alone on stdout's last line)."""
        return self.run("user", "add", name, *role).strip().splitlines()[-1].strip()

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        found = queue.Queue()

        def drain():
            for line in self.process.stderr:
                match = re.search(r"listening on (\S+)", line)
                if match:
                    found.put(match.group(1))
            found.put(None)

        threading.Thread(target=drain, daemon=True).start()
        addr = found.get(timeout=30)
        assert addr, "hookd serve stopped before listening"
        self.base_url = f"http://{addr}"

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def hookd(tmp_path):
    binary = os.environ.get("HOOKD_BIN", str(REPO / "target" / "debug" / "hookd"))
    if not os.access(binary, os.X_OK):
        pytest.fail(f"no hookd binary at {binary}: build it (cargo build) or set HOOKD_BIN")
    server = Hookd(binary, tmp_path)
    server.run("migrate")
    server.start()
    yield server
    server.stop()


class Receiver:
    """An HTTP receiver on 127.0.0.1 port 0: every request's headers and raw body."""

    def __init__(self):
        self.requests = queue.Queue()
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                received.put((self.headers, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?plugin=py"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout=20):
        """The next request (polling with a deadline, never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.requests.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise AssertionError("no delivery arrived in time")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
