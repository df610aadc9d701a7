"""A flood against lifeline-server with its default admission limits: 2,000 TCP connects a
second from one address that never start TLS, plus a TLS-level slowloris (ClientHellos
trickled a byte at a time) from another. Clients already connected keep exact delivery, new
legitimate clients (from a third address) still connect within the handshake timeout, and
the server's CPU and memory stay bounded. The figures are printed (pytest -s) and written to
$LIFELINE_TEST_TMP/flood.txt."""
import os
import socket
import ssl
import subprocess
import threading
import time

from conftest import BIN, Server
from test_metrics import scrape, value

FLOOD_S = 5.0
FLOOD_PER_S = 2000
SLOWLORIS = 200
HANDSHAKE_TIMEOUT_S = 10.0  # lifeline-server's default
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def memory_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def flood(port, stop, counts):
    """FLOOD_PER_S connects a second from 127.0.0.2, each closed after a second unused."""
    held = []
    start = time.monotonic()
    n = 0
    while not stop.is_set() and time.monotonic() - start < FLOOD_S:
        due = int((time.monotonic() - start) * FLOOD_PER_S)
        while n < due:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind(("127.0.0.2", 0))
            s.connect_ex(("127.0.0.1", port))
            held.append((time.monotonic(), s))
            n += 1
        while held and time.monotonic() - held[0][0] > 1.0:
            held.pop(0)[1].close()
        time.sleep(0.001)
    for _, s in held:
        s.close()
    counts["flood"] = n


def client_hello(ca):
    """The bytes of a real ClientHello, from Python's ssl with memory BIOs."""
    ctx = ssl.create_default_context(cafile=ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def slowloris(port, hello, stop, counts):
    """SLOWLORIS connections from 127.0.0.3, each trickling its ClientHello a byte a second."""
    socks = []
    for _ in range(SLOWLORIS):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.3", 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
    sent = 0
    while not stop.is_set() and sent < len(hello) - 1:  # until the flood is over
        for s in socks:
            try:
                s.send(hello[sent:sent + 1])
            except OSError:
                pass  # the server dropped it (handshake timeout): as it should
        sent += 1
        stop.wait(1.0)
    counts["slowloris_bytes"] = sent
    for s in socks:
        s.close()


def legit_connect(server, ca):
    """Seconds for a new client from 127.0.0.1 to connect and get one echo, or None."""
    t0 = time.monotonic()
    p = subprocess.run([os.path.join(BIN, "lifeline-cat"), "--connect", f"127.0.0.1:{server.port}", "--ca", ca,
                        "--expect", "1", "--connect-timeout-ms", str(int(HANDSHAKE_TIMEOUT_S * 1000)),
                        "--timeout-ms", "20000"], input="hello\n", capture_output=True, text=True, timeout=30)
    return time.monotonic() - t0 if p.returncode == 0 and p.stdout == "hello\n" else None


def test_flood_and_slowloris(tmpdir_path):
    server = Server(os.path.join(tmpdir_path, "certs"))
    ca = os.path.join(tmpdir_path, "certs", "ca.pem")
    pid = server.proc.pid
    try:
        lines = [f"steady-{i:05d}\n" for i in range(3000)]
        steady = subprocess.Popen([os.path.join(BIN, "lifeline-cat"), "--connect", f"127.0.0.1:{server.port}", "--ca",
                                   ca, "--expect", str(len(lines)), "--timeout-ms", "60000"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        received = []
        reader = threading.Thread(target=lambda: received.extend(steady.stdout))
        reader.start()
        steady.stdin.write(lines[0])
        steady.stdin.flush()
        deadline = time.monotonic() + 10
        while value(scrape(server), "lifeline_messages_received_total") == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)

        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        stop, counts = threading.Event(), {}
        attackers = [threading.Thread(target=flood, args=(server.port, stop, counts)),
                     threading.Thread(target=slowloris, args=(server.port, client_hello(ca), stop, counts))]
        for t in attackers:
            t.start()
        connect_times = []
        i = 1
        while attackers[0].is_alive():  # the steady stream goes on throughout, paced
            steady.stdin.writelines(lines[i:i + 100])
            steady.stdin.flush()
            i += 100
            connect_times.append(legit_connect(server, ca))
            time.sleep(0.2)
        stop.set()
        steady.stdin.writelines(lines[i:])
        steady.stdin.flush()
        for t in attackers:
            t.join()
        elapsed, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
        steady.stdin.close()
        assert steady.wait(60) == 0
        reader.join()
        m = scrape(server)
        figures = {
            "flood connects": counts["flood"], "slowloris connections": SLOWLORIS,
            "elapsed s": round(elapsed, 2), "server CPU s": round(cpu, 2),
            "server CPU % of one core": round(100 * cpu / elapsed, 1),
            "server peak RSS MiB": round(memory_kib(pid, "VmHWM") / 1024, 1),
            "refused (rate)": value(m, "lifeline_connections_refused_total", reason="rate"),
            "refused (max_handshakes)": value(m, "lifeline_connections_refused_total", reason="max_handshakes"),
            "handshake failures (timeouts, resets)": value(m, "lifeline_handshake_failures_total"),
            "legit connect s (max)": round(max(t for t in connect_times if t is not None), 3)
            if any(connect_times) else None,
        }
        report = "\n".join(f"{k}: {v}" for k, v in figures.items())
        print("\n" + report)
        with open(os.path.join(os.environ.get("LIFELINE_TEST_TMP", tmpdir_path), "flood.txt"), "w") as f:
            f.write(report + "\n")
        assert received == lines  # exact, through the flood
        assert all(t is not None and t < HANDSHAKE_TIMEOUT_S for t in connect_times), connect_times
        assert counts["flood"] >= 0.9 * FLOOD_S * FLOOD_PER_S
        assert value(m, "lifeline_connections_refused_total", reason="rate") > 0
        assert memory_kib(pid, "VmHWM") < 256 * 1024  # bounded: far from growing with the flood
        assert cpu < elapsed  # less than one core on average
    finally:
        server.stop()
