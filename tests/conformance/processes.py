"""The programs under test and the ends the driver plays against them:

Server     a real lifeline-server on an ephemeral loopback port, with its liveness view
           (--sessions-every-ms) parsed from stderr, so a test can wait for the server's
           own account of a session (queued, unacked, detached, gone) instead of sleeping.
FakeServer the driver as a TLS server, for the client rules: lifeline-cat connects to it.
Cat        a lifeline-cat process pointed at a FakeServer.
"""
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import wire

START_TIMEOUT = 10.0


class Server:
    def __init__(self, certs, *args, sessions_every_ms=50):
        cmd = [os.path.join(wire.BIN, "lifeline-server"), "--dev-certs", certs,
               "--listen", "127.0.0.1:0", "--sessions-every-ms", str(sessions_every_ms), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.cond = threading.Condition()
        self.snapshot = None  # the latest liveness view: {session id (int): entry}
        self.views = 0  # how many have been printed
        self.stderr = []
        self.port = self._read_port()
        self.ca_file = os.path.join(certs, "ca.pem")  # made by --dev-certs before listening
        self.ctx = wire.client_context(self.ca_file)
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_port(self):
        timer = threading.Timer(START_TIMEOUT, self.proc.kill)  # a hung start fails the test
        timer.start()
        line = self.proc.stdout.readline()
        timer.cancel()
        assert line.startswith("listening on "), f"lifeline-server did not start: {line!r}"
        return int(line.rsplit(":", 1)[1])

    def _read_stderr(self):
        for line in self.proc.stderr:
            if not line.startswith('{"ts_ms"'):
                self.stderr.append(line)
                continue
            view = {int(s["id"], 16): s for s in json.loads(line)["sessions"]}
            with self.cond:
                self.snapshot = view
                self.views += 1
                self.cond.notify_all()

    def wait_session(self, sid, pred=lambda s: True, timeout=wire.TIMEOUT, what="the session"):
        """Wait for a liveness view, printed after this call, in which session sid is listed
        (None: gone) and pred(its entry) holds; returns the entry."""
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = self.views
            while True:
                entry = self.snapshot.get(sid) if self.snapshot is not None else None
                if self.views > seen and (entry is None if pred is None else entry is not None and pred(entry)):
                    return entry
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {what}; last view: {self.snapshot}"
                self.cond.wait(left)

    def connect(self, session=None, alpn=True):
        ctx = self.ctx if alpn else wire.client_context(self.ca_file, alpn=False)
        return wire.dial(ctx, self.port, session=session)

    def stop(self):
        """SIGTERM, as an operator stops it; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class FakeServer:
    """A TLS listener with the dev server certificate and ALPN lifeline/1."""

    def __init__(self, certs, cert="server.pem", key="server.key"):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(certs, cert), os.path.join(certs, key))
        self.ctx.set_alpn_protocols([wire.ALPN])
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def accept(self, timeout=wire.TIMEOUT):
        """The next client connection, its TLS handshake done."""
        self.sock.settimeout(timeout)
        raw, _ = self.sock.accept()
        raw.settimeout(timeout)
        return wire.Link(self.ctx.wrap_socket(raw, server_side=True))

    def try_accept(self, timeout):
        """The next connection whose handshake succeeds, or None if none comes in time."""
        try:
            return self.accept(timeout)
        except (socket.timeout, ssl.SSLError, ConnectionError):
            return None

    def close(self):
        self.sock.close()


class Cat:
    """lifeline-cat dialling a FakeServer. Its stdin stays open until close_stdin(), so it
    runs until the test is done with it; --timeout-ms bounds it in any case."""

    def __init__(self, certs, port, *args, timeout_ms=20000):
        cmd = [os.path.join(wire.BIN, "lifeline-cat"), "--connect", f"127.0.0.1:{port}",
               "--ca", os.path.join(certs, "ca.pem"), "--timeout-ms", str(timeout_ms),
               "--reconnect-min-ms", "10", "--reconnect-max-ms", "50", *args]
        env = dict(os.environ, LIFELINE_CAT_VERBOSE="1")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)

    def send_lines(self, *lines):
        self.proc.stdin.write(b"".join(line + b"\n" for line in lines))
        self.proc.stdin.flush()

    def close_stdin(self):
        self.proc.stdin.close()
        self.proc.stdin = None  # so communicate() does not flush it

    def wait(self, timeout=wire.TIMEOUT):
        """Its exit status and stderr, once it has exited by itself within timeout."""
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise AssertionError("lifeline-cat did not exit in time")
        return self.proc.returncode, err.decode(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
