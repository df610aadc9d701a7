"""The client's rules: the driver plays the server (processes.FakeServer) and lifeline-cat,
the SDK client, connects to it. The session the fake server hands out is client_steps.SID."""
import time

import processes
import wire
from client_steps import SID, TOKEN, greet, welcome
from steps import data
from wire import Code, frame

EXIT_CONNECTION = 2  # lifeline-cat: connection failed or closed for good


def no_more_connections(fake, cat, timeout=5):
    """The client gave up: it exits by itself, and no connection of its waits behind it."""
    rc, err = cat.wait(timeout)
    assert fake.try_accept(0.2) is None, "the client connected again"
    return rc, err


def test_LL_TLS_3_client_verifies_certificate_before_any_frame(certs, tmp_path):
    other_ca = str(tmp_path / "other")
    processes.Server(other_ca).stop()  # a second dev CA the client does not trust
    cases = [processes.FakeServer(other_ca),  # unknown issuer
             processes.FakeServer(certs, "client.pem", "client.key")]  # no name 127.0.0.1
    for fake in cases:
        cat = processes.Cat(certs, fake.port, timeout_ms=5000)
        try:
            assert fake.try_accept(5) is None, "the handshake succeeded"
            rc, err = cat.wait()
            assert rc == EXIT_CONNECTION and "certificate verify failed" in err, err
        finally:
            cat.kill()
            fake.close()


def reconnected(fake, make_cat):
    """lifeline-cat after its first session ran: a client that never connected would give up
    on the first failure instead of reconnecting (retry_on_first_connect is off)."""
    make_cat()
    link, _ = greet(fake)
    link.close()


def test_LL_WELCOME_2_client_rejects_unknown_version(fake, make_cat):
    reconnected(fake, make_cat)
    link, _ = greet(fake, version=2)
    link.expect_close(Code.PROTOCOL_ERROR, True)
    _, again = greet(fake)  # and it comes back
    assert again.version == 1


def test_LL_WELCOME_3_client_rejects_resume_of_another_session(fake, make_cat):
    reconnected(fake, make_cat)
    link, h = greet(fake, session_id=SID + 1, resumed=True)
    assert h.session_id == SID
    link.expect_close(Code.PROTOCOL_ERROR, True)


def test_LL_WELCOME_4_token_up_to_64_bytes(fake, make_cat):
    reconnected(fake, make_cat)
    link, _ = greet(fake, resume_token=b"K" * 64)
    link.ping()  # taken
    link.close()
    link, h = greet(fake, resume_token=b"L" * 65)
    assert (h.session_id, h.resume_token) == (SID, b"K" * 64)
    link.expect_close(Code.PROTOCOL_ERROR, True)


def ping_gaps(link, n, timeout):
    """Seconds between the client's next n+1 pings, each due within timeout (and answered,
    so that the client does not give up on us)."""
    times = []
    for _ in range(n + 1):
        p = link.recv_kind("ping", timeout, skip=("ack",))
        times.append(time.monotonic())
        link.send(frame("pong", nonce=p.nonce, timestamp_us=p.timestamp_us))
    return [b - a for a, b in zip(times, times[1:])]


def test_LL_WELCOME_5_client_pings_at_the_servers_interval(fake, make_cat):
    make_cat("--heartbeat-ms", "5000")
    link, _ = greet(fake, heartbeat_interval_ms=200)
    assert max(ping_gaps(link, 2, timeout=2)) < 1.5


def test_LL_SESSION_4_client_renumbers_after_session_lost(fake, make_cat):
    cat = make_cat()
    link, _ = greet(fake)
    cat.send_lines(b"a", b"b")
    assert [(d.seq, d.payload) for d in (link.recv_kind("data") for _ in range(2))] == [(1, b"a"), (2, b"b")]
    link.close()  # never acknowledged
    link, h = greet(fake, session_id=SID + 1, resumed=False)  # we forgot the session
    assert h.session_id == SID
    assert [(d.seq, d.payload) for d in (link.recv_kind("data") for _ in range(2))] == [(1, b"a"), (2, b"b")]


def test_LL_SESSION_5_client_resumes_with_id_token_and_position(fake, make_cat):
    make_cat()
    link, _ = greet(fake)
    link.send(data(1, b"x"), data(2, b"y"))
    while link.recv_kind("ack").seq < 2:  # lifeline-cat printed both
        pass
    link.close()
    _, h = greet(fake)
    assert (h.session_id, h.resume_token, h.last_received) == (SID, TOKEN, 2)


def test_LL_EARLY_8_client_takes_second_welcome_of_its_session_only(fake, make_cat):
    make_cat("--heartbeat-ms", "5000")
    link, _ = greet(fake)
    link.send(welcome(resumed=True, heartbeat_interval_ms=200))
    assert max(ping_gaps(link, 2, timeout=2)) < 1.5  # applied, and no Close
    link.send(welcome(session_id=SID + 1, resumed=True))
    link.expect_close(Code.PROTOCOL_ERROR, True)


def test_LL_EARLY_9_fresh_client_offers_no_foreign_ticket(fake, make_cat):
    make_cat()
    link, h = greet(fake)
    assert not link.sock.session_reused and h.session_id == 0  # a new client: full handshake
    link.ping()  # our tickets (sent after the handshake) reach the client before we drop it
    link.close()
    link, h = greet(fake)
    assert link.sock.session_reused and h.session_id == SID  # its own session's ticket


def test_LL_PING_4_client_pings_when_idle(fake, make_cat):
    make_cat("--heartbeat-ms", "300")
    link, _ = greet(fake, heartbeat_interval_ms=0)
    gaps = ping_gaps(link, 2, timeout=2)
    assert min(gaps) >= 0.2 and max(gaps) < 1.5, gaps  # about once per interval


def test_LL_HB_3_client_times_out_silent_server(fake, make_cat):
    make_cat("--heartbeat-ms", "200", "--heartbeat-timeout-ms", "800")
    link, _ = greet(fake)  # and from now on we answer nothing
    start = time.monotonic()
    link.expect_close(Code.HEARTBEAT_TIMEOUT, True, timeout=5)
    assert time.monotonic() - start >= 0.7
    _, h = greet(fake)
    assert h.session_id == SID


def test_LL_CLOSE_9_client_stops_on_close_without_reconnect(fake, make_cat):
    cat = make_cat()
    link, _ = greet(fake)
    link.send(frame("close", code=Code.REJECTED, reason="go away for good", reconnect=False))
    rc, err = no_more_connections(fake, cat)
    assert rc == EXIT_CONNECTION and "go away for good" in err, err


def test_LL_CLOSE_10_client_reconnects_and_resumes_after_close(fake, make_cat):
    make_cat()
    link, _ = greet(fake)
    link.send(frame("close", code=Code.GOING_AWAY, reason="restarting", reconnect=True))
    _, h = greet(fake)
    assert (h.session_id, h.resume_token) == (SID, TOKEN)


def test_LL_CLOSE_11_client_protocol_error_close_then_reconnect(fake, make_cat):
    make_cat()
    for bad in (data(2), data(0), frame("ack", seq=5), b"\x0a\xff\x01"):
        link, _ = greet(fake)
        link.send_raw(wire.encode(bad))
        link.expect_close(Code.PROTOCOL_ERROR, True)
        link.close()
    _, h = greet(fake)
    assert h.session_id == SID  # still its session


def test_LL_CLOSE_12_client_too_big_close_and_stop(fake, make_cat):
    cat = make_cat("--max-frame", "1024")
    link, _ = greet(fake)
    link.send(data(1, b"B" * 2000))
    link.expect_close(Code.TOO_BIG, False)
    rc, _ = no_more_connections(fake, cat)
    assert rc == EXIT_CONNECTION


def test_LL_CLOSE_13_client_close_is_normal_without_reconnect(fake, make_cat):
    cat = make_cat()
    link, _ = greet(fake)
    cat.close_stdin()  # nothing to send: lifeline-cat closes the client
    link.expect_close(Code.NORMAL, False)
    assert no_more_connections(fake, cat)[0] == 0
