"""lifeline-server --metrics: /metrics scraped while a workload runs must parse with
Debian's prometheus_client text parser (written by others) and count the workload exactly;
/sessions pages and sorts the liveness view; /healthz says whether to send traffic."""
import json
import os
import subprocess
import time

from prometheus_client.parser import text_string_to_metric_families

from conftest import BIN, Server

CLIENTS = 4
BATCHES = 10
PER_BATCH = 50


def scrape(server):
    """{(sample name, frozenset of labels): value} of one scrape, through the real parser."""
    status, text = server.get("/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("lifeline_"), family.name
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def start_cat(server, certs):
    cmd = [os.path.join(BIN, "lifeline-cat"), "--connect", f"127.0.0.1:{server.port}", "--ca",
           os.path.join(certs, "ca.pem"), "--expect", str(BATCHES * PER_BATCH), "--quiet", "--heartbeat-ms", "100",
           "--timeout-ms", "60000"]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, text=True)


def test_counters_match_the_workload(server, tmpdir_path):
    certs = os.path.join(tmpdir_path, "certs")
    cats = [start_cat(server, certs) for _ in range(CLIENTS)]
    sent_bytes = 0
    previous = scrape(server)
    for batch in range(BATCHES):
        for i, cat in enumerate(cats):
            lines = [f"c{i}-b{batch}-m{m}" for m in range(PER_BATCH)]
            sent_bytes += sum(len(l) for l in lines)
            cat.stdin.write("".join(l + "\n" for l in lines))
            cat.stdin.flush()
        time.sleep(0.05)
        now = scrape(server)  # mid-stream: it parses, and no counter goes back
        for key, v in previous.items():
            if key[0].endswith("_total"):
                assert now[key] >= v, key
        previous = now
    for cat in cats:
        cat.stdin.close()
    for cat in cats:
        assert cat.wait(60) == 0
    total = CLIENTS * BATCHES * PER_BATCH
    deadline = time.monotonic() + 10
    while True:  # the last close frames may still be on their way
        m = scrape(server)
        if value(m, "lifeline_session_events_total", event="closed") == CLIENTS or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert value(m, "lifeline_messages_received_total") == total
    assert value(m, "lifeline_messages_sent_total") == total  # the echo
    assert value(m, "lifeline_received_bytes_total") == sent_bytes
    assert value(m, "lifeline_sent_bytes_total") == sent_bytes
    assert value(m, "lifeline_retransmits_total") == 0
    assert value(m, "lifeline_duplicates_dropped_total") == 0
    assert value(m, "lifeline_handshakes_total", kind="full") == CLIENTS
    assert value(m, "lifeline_handshakes_total", kind="resumed") == 0
    assert value(m, "lifeline_handshake_failures_total") == 0
    assert value(m, "lifeline_connections_accepted_total") == CLIENTS
    assert value(m, "lifeline_session_events_total", event="opened") == CLIENTS
    assert value(m, "lifeline_session_events_total", event="closed") == CLIENTS
    assert value(m, "lifeline_sessions", state="connected") == 0
    assert value(m, "lifeline_sessions", state="detached") == 0
    assert value(m, "lifeline_connections") == 0
    assert value(m, "lifeline_handshakes_in_progress") == 0
    assert value(m, "lifeline_queued_messages") == 0
    assert value(m, "lifeline_acks_received_total") >= 1
    assert value(m, "lifeline_heartbeat_rtt_seconds_count") == value(
        m, "lifeline_heartbeat_rtt_seconds_bucket", le="+Inf")
    assert value(m, "lifeline_tls_certificate_not_after_timestamp_seconds") > time.time()


def test_live_sessions_in_metrics_and_sessions_view(server, tmpdir_path):
    certs = os.path.join(tmpdir_path, "certs")
    cats = [start_cat(server, certs) for _ in range(3)]
    for n, cat in enumerate(cats):  # a different number of messages each, to sort by
        cat.stdin.write("".join(f"x{i}\n" for i in range(n + 1)))
        cat.stdin.flush()
    deadline = time.monotonic() + 10
    while True:
        m = scrape(server)
        if value(m, "lifeline_messages_received_total") == 6 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert value(m, "lifeline_sessions", state="connected") == 3
    while value(m, "lifeline_heartbeat_rtt_seconds_count") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # idle clients ping every 100 ms, each ping reports a round trip
        m = scrape(server)
    assert value(m, "lifeline_heartbeat_rtt_seconds_count") >= 3
    assert value(m, "lifeline_heartbeat_rtt_seconds_bucket", le="+Inf") == value(
        m, "lifeline_heartbeat_rtt_seconds_count")
    assert value(m, "lifeline_connections") == 3
    status, body = server.get("/sessions?sort=received&limit=2")
    assert status == 200
    page = json.loads(body)
    assert page["total"] == 3 and page["count"] == 2 and page["limit"] == 2
    assert [s["received"] for s in page["sessions"]] == [3, 2]
    assert all(s["state"] == "connected" for s in page["sessions"])
    status, body = server.get("/sessions?sort=received&limit=2&offset=2")
    assert [s["received"] for s in json.loads(body)["sessions"]] == [1]
    ids = [s["id"] for s in json.loads(server.get("/sessions")[1])["sessions"]]
    assert ids == sorted(ids) and len(ids) == 3
    assert server.get("/sessions?sort=nonsense")[0] == 400
    assert server.get("/sessions?limit=-1")[0] == 400
    assert server.get("/nowhere")[0] == 404
    for cat in cats:
        cat.kill()
        cat.wait()


def test_healthz(server):
    assert server.get("/healthz") == (200, "ok\n")


def test_json_log_lines(tmpdir_path):
    server = Server(os.path.join(tmpdir_path, "certs"), "--log-format", "json")
    try:
        p = subprocess.run([os.path.join(BIN, "lifeline-cat"), "--connect", f"127.0.0.1:{server.port}", "--ca",
                            os.path.join(tmpdir_path, "certs", "ca.pem"), "--expect", "1"],
                           input="hi\n", capture_output=True, text=True, timeout=30)
        assert p.returncode == 0
        line = server.wait_log(lambda l: "session_closed" in l)
        entry = json.loads(line)
        assert entry["level"] == "info" and entry["event"] == "session_closed"
        assert entry["cause"] == "clean_close" and entry["peer"].startswith("127.0.0.1:")
        opened = json.loads(server.wait_log(lambda l: "session_opened" in l))
        assert opened["session"] == entry["session"] and "ts" in opened
    finally:
        assert server.stop() == 0
