"""SIGHUP to lifeline-server reloads its certificate and key: mid-stream, the files are
replaced by another CA's. The stream already running stays exact, a client trusting only
the new CA connects, one trusting only the old CA is refused, and a broken file keeps the
context in use, with the reason in the log and in the metrics."""
import os
import shutil
import signal
import subprocess
import threading
import time

import lifeline
from conftest import BIN, Server
from test_metrics import scrape, value

LINES = 2000


def cat(server, ca, *args, **kw):
    cmd = [os.path.join(BIN, "lifeline-cat"), "--connect", f"127.0.0.1:{server.port}", "--ca", ca,
           "--timeout-ms", "30000", *args]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)


def one_message(server, ca):
    """(exit status, stdout, stderr) of a lifeline-cat sending one line and expecting it back."""
    p = cat(server, ca, "--expect", "1")
    out, err = p.communicate("ping\n", timeout=60)
    return p.returncode, out, err


def replace(src_dir, live_dir):
    for name in ("server.pem", "server.key"):
        shutil.copyfile(os.path.join(src_dir, name), os.path.join(live_dir, name + ".tmp"))
        os.replace(os.path.join(live_dir, name + ".tmp"), os.path.join(live_dir, name))


def test_sighup_switches_to_another_ca(tmpdir_path):
    old = lifeline.dev_certs(os.path.join(tmpdir_path, "old"))
    new = lifeline.dev_certs(os.path.join(tmpdir_path, "new"))
    live = os.path.join(tmpdir_path, "live")
    os.mkdir(live)
    replace(old.dir, live)
    server = Server(None, "--cert", os.path.join(live, "server.pem"), "--key", os.path.join(live, "server.key"))
    try:
        streaming = cat(server, old.ca, "--expect", str(LINES))
        received = []
        reader = threading.Thread(target=lambda: received.extend(streaming.stdout))
        reader.start()
        lines = [f"line-{i:05d}\n" for i in range(LINES)]
        streaming.stdin.writelines(lines[:LINES // 2])
        streaming.stdin.flush()
        deadline = time.monotonic() + 30
        while value(scrape(server), "lifeline_messages_received_total") == 0:  # connected, streaming
            assert time.monotonic() < deadline, "the stream did not start"
            time.sleep(0.01)
        replace(new.dir, live)
        server.proc.send_signal(signal.SIGHUP)  # while the first half is still on its way
        logged = server.wait_log(lambda l: "tls_reloaded" in l)
        assert os.path.join(live, "server.pem") in logged
        streaming.stdin.writelines(lines[LINES // 2:])
        streaming.stdin.close()
        assert streaming.wait(60) == 0, streaming.stderr.read()
        reader.join()
        assert received == lines  # exact: every line once, in order

        status, out, _ = one_message(server, new.ca)
        assert (status, out) == (0, "ping\n")
        status, _, err = one_message(server, old.ca)
        assert status != 0 and "verify" in err, err

        m = scrape(server)
        assert value(m, "lifeline_tls_reloads_total", result="success") == 1
        assert value(m, "lifeline_tls_reloads_total", result="failure") == 0

        with open(os.path.join(live, "server.key"), "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
        server.proc.send_signal(signal.SIGHUP)
        failed = server.wait_log(lambda l: "tls_reload_failed" in l)
        assert " error " in failed and "private key" in failed, failed
        assert value(scrape(server), "lifeline_tls_reloads_total", result="failure") == 1
        status, out, _ = one_message(server, new.ca)  # the context in use stayed
        assert (status, out) == (0, "ping\n")
    finally:
        assert server.stop() == 0
