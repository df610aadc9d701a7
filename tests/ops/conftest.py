"""Shared pieces of the operations tests: a lifeline-server with --metrics, and scraping."""
import os
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request

import pytest

BIN = os.environ.get("LIFELINE_BIN", "build/bin")
START_TIMEOUT = 10.0


class Server:
    """build/bin/lifeline-server on ephemeral loopback ports, its HTTP endpoint on another."""

    def __init__(self, certs, *args):
        cmd = [os.path.join(BIN, "lifeline-server"), "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", *args]
        if certs is not None:
            cmd += ["--dev-certs", certs]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        timer = threading.Timer(START_TIMEOUT, self.proc.kill)  # a hung start fails the test
        timer.start()
        first, second = self.proc.stdout.readline(), self.proc.stdout.readline()
        timer.cancel()
        assert first.startswith("listening on "), f"no listening line: {first!r} {self.proc.stderr.read()}"
        assert second.startswith("metrics on "), f"no metrics line: {second!r}"
        self.port = int(first.rsplit(":", 1)[1])
        self.http = int(second.rsplit(":", 1)[1])
        self.log = []
        self.log_cond = threading.Condition()
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self):
        for line in self.proc.stderr:
            with self.log_cond:
                self.log.append(line)
                self.log_cond.notify_all()

    def wait_log(self, pred, timeout=10.0):
        """The first log line for which pred holds, waiting for it if needed."""
        with self.log_cond:
            ok = self.log_cond.wait_for(lambda: any(pred(l) for l in self.log), timeout)
            assert ok, f"no such log line; log: {self.log}"
            return next(l for l in self.log if pred(l))

    def get(self, path):
        """(status, body text) of GET path on the HTTP endpoint."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(START_TIMEOUT)


@pytest.fixture
def tmpdir_path():
    with tempfile.TemporaryDirectory(dir=os.environ.get("LIFELINE_TEST_TMP")) as d:
        yield d


@pytest.fixture
def server(tmpdir_path):
    srv = Server(os.path.join(tmpdir_path, "certs"))
    yield srv
    srv.stop()
