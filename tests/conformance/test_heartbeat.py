"""§10 Heartbeats: the server's side against lifeline-server, the client's in test_client.py
(LL-PING-1 asks both ends)."""
import time

import wire
from client_steps import greet
from steps import open_session, resumed
from wire import Code, frame


def test_LL_PING_1_ping_answered_with_echo_by_both_ends(server, fake, make_cat):
    link, _ = open_session(server)
    link.ping(nonce=1234567)
    make_cat()
    client, _ = greet(fake)
    client.send(frame("ping", nonce=42, timestamp_us=4242))
    pong = client.recv_kind("pong", skip=("ack",))
    assert (pong.nonce, pong.timestamp_us) == (42, 4242)


def test_LL_PING_2_unsolicited_pong_ignored(server):
    link, _ = open_session(server)
    link.send(frame("pong", nonce=987654, timestamp_us=1))
    link.ping()


def test_LL_PING_3_server_never_pings(server):
    link, _ = open_session(server, heartbeat_timeout_ms=1000, heartbeat_interval_ms=200)
    frames = []
    try:  # we stay silent until the server gives up on us (with or without a Close)
        while not frames or frames[-1].WhichOneof("kind") != "close":
            frames.append(link.recv(timeout=5))
    except wire.PeerGone:
        pass
    assert "ping" not in [f.WhichOneof("kind") for f in frames]


def test_LL_HB_1_silent_client_gets_heartbeat_timeout_session_survives(server):
    link, w = open_session(server, heartbeat_timeout_ms=1000)
    start = time.monotonic()
    link.expect_close(Code.HEARTBEAT_TIMEOUT, True, timeout=5)
    assert time.monotonic() - start >= 0.9
    assert resumed(server, w)


def test_LL_HB_2_any_frame_counts_as_liveness(server):
    link, _ = open_session(server, heartbeat_timeout_ms=1000)
    for _ in range(8):  # 2.4 s of acks 0, never a ping: more than twice the timeout
        link.send(frame("ack", seq=0))
        time.sleep(0.3)
    link.ping()
