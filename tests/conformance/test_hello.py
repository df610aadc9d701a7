"""§5 Hello and §6 Welcome, against lifeline-server."""
import os
import time

import pytest

import wire
from steps import ack_until, open_session, recv_data, resumed, send_data
from wire import Code, frame


def test_LL_HELLO_1_first_frame_must_be_hello(server):
    link = server.connect()
    link.send(frame("ping", nonce=1))
    link.expect_close(Code.PROTOCOL_ERROR, False)


@pytest.mark.parametrize("second", [wire.hello(), frame("welcome", version=1)], ids=["hello", "welcome"])
def test_LL_HELLO_2_second_hello_or_client_welcome_ends_session(server, second):
    link, w = open_session(server)
    link.send(second)
    link.expect_close(Code.PROTOCOL_ERROR, False)
    assert not resumed(server, w)


def test_LL_HELLO_3_version_negotiation(server):
    link, w = open_session(server, version=7)  # a client from the future
    assert w.version == 1
    link = server.connect()
    link.send(wire.hello(version=0))
    link.expect_close(Code.PROTOCOL_ERROR, False)


def test_LL_HELLO_4_session_id_zero_opens_new_session(server):
    _, w = open_session(server, session_id=0, resume_token=b"ignored", last_received=5)
    assert not w.resumed and w.session_id != 0
    assert len(w.resume_token) == 16 and w.last_received == 0


def test_LL_HELLO_5_unknown_session_or_wrong_token_gets_new_session(server):
    _, w = open_session(server)
    _, unknown = open_session(server, session_id=w.session_id ^ 0x5A5A, resume_token=os.urandom(16))
    bad = bytes(b ^ 1 for b in w.resume_token)
    _, wrong = open_session(server, session_id=w.session_id, resume_token=bad)
    for other in (unknown, wrong):
        assert not other.resumed and other.session_id not in (0, w.session_id)
    assert resumed(server, w), "a wrong token must not hurt the session it named"


@pytest.mark.parametrize("asked, applied", [(0, 15000), (10, 1000), (2000, 2000), (10**9, 300000)])
def test_LL_HELLO_6_heartbeat_timeout_default_and_clamp(server, asked, applied):
    _, w = open_session(server, heartbeat_timeout_ms=asked)
    assert w.heartbeat_timeout_ms == applied


@pytest.mark.parametrize("timeout, asked, applied",
                         [(3000, 0, 1000), (0, 0, 5000), (3000, 10000, 1500), (3000, 700, 700)])
def test_LL_HELLO_7_heartbeat_interval_default_and_clamp(server, timeout, asked, applied):
    _, w = open_session(server, heartbeat_timeout_ms=timeout, heartbeat_interval_ms=asked)
    assert (w.heartbeat_timeout_ms, w.heartbeat_interval_ms) == (timeout or 15000, applied)


def test_LL_HELLO_8_zero_windows_mean_the_servers_own(server):
    link, _ = open_session(server, window_messages=0, window_bytes=0)
    send_data(link, b"a" * 10, b"b" * 10, b"c" * 10)
    got = recv_data(link, 3)  # none acknowledged: a window of "nothing" would stall at once
    assert [d.payload[:1] for d in got] == [b"a", b"b", b"c"]


def test_LL_HELLO_9_max_frame_limits_what_the_server_sends(server):
    link, _ = open_session(server, max_frame=200)
    send_data(link, b"B" * 400, b"small")  # the echo of the first cannot be sent to us
    d = link.recv_kind("data", skip=("ack", "pong"))
    assert (d.seq, d.payload) == (1, b"small")
    link, _ = open_session(server, max_frame=0)  # 0: 16 MiB
    send_data(link, b"M" * (1 << 20))
    assert len(recv_data(link, 1, timeout=10)[0].payload) == 1 << 20


def test_LL_HELLO_10_resume_position_out_of_range(server):
    link, w = open_session(server)
    send_data(link, b"1", b"2")
    recv_data(link, 2)  # the server wrote seq 1 and 2
    link.send(frame("ack", seq=1))
    server.wait_session(w.session_id, lambda s: s["unacked"] == 1, what="the ack of seq 1")
    for bad in (3, 0):  # above what was written; below what was acknowledged
        other = server.connect()
        other.send(wire.resume(w, last_received=bad))
        other.expect_close(Code.PROTOCOL_ERROR, False)
    link.ping()  # the session kept its connection
    assert server.wait_session(w.session_id)["connections"] == 1
    _, again = open_session(server, session_id=w.session_id, resume_token=w.resume_token,
                            last_received=2)
    assert again.resumed


def test_LL_HELLO_11_hello_timeout_closes_without_close_frame(server):
    link = server.connect()  # TLS done, no Hello
    start = time.monotonic()
    link.expect_eof(timeout=15)  # handshake_timeout_ms defaults to 10000
    assert time.monotonic() - start > 5, "closed too early to be the Hello timeout"


def test_LL_WELCOME_1_welcome_fields(make_server):
    server = make_server("--max-frame", "4096")
    link, w = open_session(server)
    assert (w.version, w.resumed, w.last_received) == (1, False, 0)
    assert (w.window_messages, w.window_bytes, w.max_frame) == (16384, 16 << 20, 4096)
    send_data(link, b"1", b"2", b"3")
    ack_until(link, 3)  # the server accepted all three
    link.close()
    _, again = open_session(server, session_id=w.session_id, resume_token=w.resume_token)
    assert (again.resumed, again.session_id, again.last_received) == (True, w.session_id, 3)
    assert again.resume_token == w.resume_token
