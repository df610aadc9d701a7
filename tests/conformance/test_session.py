"""§7 Sessions and resume, against lifeline-server."""
from steps import data, open_session, recv_data, resumed, send_data
from wire import Code


def test_LL_SESSION_1_detached_session_kept_for_ttl(make_server):
    server = make_server("--session-ttl-ms", "1500")
    link, w = open_session(server)
    link.close()
    server.wait_session(w.session_id, lambda s: s["state"] == "detached", what="the detach")
    assert resumed(server, w)  # within the TTL
    server.wait_session(w.session_id, None, timeout=10, what="the expiry")
    assert not resumed(server, w)


def test_LL_SESSION_2_takeover_closes_old_connection(server):
    old, w = open_session(server)
    new, again = open_session(server, session_id=w.session_id, resume_token=w.resume_token)
    assert again.resumed
    old.expect_close(Code.NORMAL, True)
    send_data(new, b"on the new link")
    assert recv_data(new, 1)[0].payload == b"on the new link"


def test_LL_SESSION_3_resume_resends_unacknowledged_in_order(server):
    link, w = open_session(server)
    send_data(link, b"1", b"2", b"3")
    recv_data(link, 3)  # echoed, never acknowledged
    link.close()
    link, again = open_session(server, session_id=w.session_id, resume_token=w.resume_token,
                               last_received=1)
    assert again.resumed and again.last_received == 3
    link.send(data(4, b"4"))  # new: must come after the resent ones
    assert [(d.seq, d.payload) for d in recv_data(link, 3)] == [(2, b"2"), (3, b"3"), (4, b"4")]
