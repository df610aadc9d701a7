"""§8 Early welcome (TLS 1.3 ticket resume), against lifeline-server. Python's ssl keeps the
ticket as an SSLSession; offering it again resumes, and the server may welcome at once."""
import pytest

import wire
from steps import open_session, resumed, ticket
from wire import Code, frame


def early_welcome(server, t):
    """A connection resuming ticket t, and the Welcome it got before saying anything."""
    link = server.connect(session=t)
    assert link.sock.session_reused, "the ticket was not resumed"
    return link, link.recv_kind("welcome", skip=())


def detached_with_ticket(server, **fields):
    """A session whose connection is gone, and a ticket issued on that connection."""
    link, w = open_session(server, **fields)
    t = ticket(link)
    link.close()
    server.wait_session(w.session_id, lambda s: s["state"] == "detached", what="the detach")
    return w, t


def test_LL_EARLY_1_ticket_of_live_session_welcomed_before_hello(server):
    w, t = detached_with_ticket(server)
    _, early = early_welcome(server, t)
    assert (early.session_id, early.resumed, early.resume_token) == (w.session_id, True, w.resume_token)


def test_LL_EARLY_2_no_early_welcome_without_live_session(server):
    link, w = open_session(server)  # a full handshake: the first frame answers the Hello
    assert not link.sock.session_reused and not w.resumed
    t = ticket(link)
    link.send(frame("close", code=Code.NORMAL, reconnect=False))  # the session ends
    link.expect_eof()
    link = server.connect(session=t)
    assert link.sock.session_reused
    link.send(wire.hello())
    first = link.recv_kind("welcome", skip=())
    assert not first.resumed and first.session_id != w.session_id


def test_LL_EARLY_3_same_values_no_second_welcome(server):
    w, t = detached_with_ticket(server, heartbeat_timeout_ms=6000)
    link, _ = early_welcome(server, t)
    link.send(wire.resume(w, heartbeat_timeout_ms=6000))
    link.send(frame("ping", nonce=5))
    assert link.recv_kind("pong", skip=()).nonce == 5  # nothing in between: no second Welcome


def test_LL_EARLY_4_new_values_second_welcome_and_enforced(server):
    w, t = detached_with_ticket(server)  # 15000 / 5000
    link, early = early_welcome(server, t)
    assert early.heartbeat_timeout_ms == 15000
    link.send(wire.resume(w, heartbeat_timeout_ms=1000, heartbeat_interval_ms=300))
    second = link.recv_kind("welcome", skip=())
    assert (second.session_id, second.resumed, second.last_received) == (w.session_id, True, early.last_received)
    assert (second.heartbeat_timeout_ms, second.heartbeat_interval_ms) == (1000, 300)
    link.expect_close(Code.HEARTBEAT_TIMEOUT, True, timeout=5)  # silent: the new 1000 ms apply


@pytest.mark.parametrize("case", ["new-session", "other-session", "wrong-token"])
def test_LL_EARLY_5_hello_for_other_session_after_early_welcome(server, case):
    w, t = detached_with_ticket(server)
    _, other = open_session(server)
    link, _ = early_welcome(server, t)
    bad = {"new-session": wire.hello(),
           "other-session": wire.resume(other),
           "wrong-token": wire.hello(session_id=w.session_id, resume_token=b"\0" * 16)}[case]
    link.send(bad)
    link.expect_close(Code.PROTOCOL_ERROR, False)
    assert resumed(server, w), "the welcomed session must be unaffected"


def test_LL_EARLY_6_session_ended_in_between(server):
    w, t = detached_with_ticket(server)
    link, _ = early_welcome(server, t)
    ender, again = open_session(server, session_id=w.session_id, resume_token=w.resume_token)
    assert again.resumed
    ender.send(frame("close", code=Code.NORMAL, reconnect=False))  # ends the session
    ender.expect_eof()
    link.send(wire.resume(w))
    link.expect_close(Code.SESSION_CLOSED, True)
    assert not resumed(server, w)


def test_LL_EARLY_7_nothing_changes_before_the_hello(server):
    live, w = open_session(server)
    t = ticket(live)
    early_link, early = early_welcome(server, t)  # the session still has its connection
    assert early.session_id == w.session_id
    live.ping(nonce=7)  # not taken over, not closed
    view = server.wait_session(w.session_id)
    assert (view["state"], view["connections"]) == ("connected", 1)
