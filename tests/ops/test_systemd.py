"""lifeline-server under systemd: the sd_notify readiness protocol, over a NOTIFY_SOCKET of
the test's own (what systemd gives a Type=notify service), and the sample unit's shape."""
import os
import signal
import socket
import subprocess

import pytest

BIN = os.environ.get("LIFELINE_BIN", "build/bin")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def built_with_systemd(path):
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    return "libsystemd" in out


def next_message(sock):
    sock.settimeout(10)
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines() if "=" in line)


def test_ready_reload_and_stop_are_notified(tmpdir_path):
    server = os.path.join(BIN, "lifeline-server")
    if not built_with_systemd(server):
        pytest.skip("lifeline-server built without libsystemd")
    path = os.path.join(tmpdir_path, "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        env = dict(os.environ, NOTIFY_SOCKET=path)
        proc = subprocess.Popen([server, "--listen", "127.0.0.1:0", "--dev-certs", os.path.join(tmpdir_path, "c")],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        try:
            port = int(proc.stdout.readline().rsplit(":", 1)[1])
            ready = next_message(sock)
            assert ready["READY"] == "1"
            assert ready["STATUS"] == f"listening on port {port}"
            proc.send_signal(signal.SIGHUP)
            reloading = next_message(sock)
            assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
            assert next_message(sock)["READY"] == "1"
            proc.send_signal(signal.SIGTERM)
            assert next_message(sock)["STOPPING"] == "1"
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_sample_unit_is_a_notify_service_that_reloads_on_sighup():
    with open(os.path.join(ROOT, "samples", "systemd", "lifeline-server.service")) as f:
        unit = f.read()
    assert "\nType=notify\n" in unit
    assert "\nExecReload=/bin/kill -HUP $MAINPID\n" in unit
    assert "--store" in unit and "--metrics" in unit
