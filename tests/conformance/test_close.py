"""§11 Close, the server's side, against lifeline-server."""
import signal
import socket
import struct

import pytest

import wire
from steps import ack_until, data, open_session, resumed
from wire import Code, frame

QUEUE_MAX = 65536  # lifeline-server's per-session queue_max_messages (server.h default)


def test_LL_CLOSE_1_nothing_after_close_then_hang_up(server):
    link, _ = open_session(server)
    link.send(data(0))  # a violation: the server owes us a Close
    link.expect_close(Code.PROTOCOL_ERROR, False)
    link.expect_eof(timeout=3)  # we never hang up: the server goes by itself, within 1 s


def test_LL_CLOSE_2_receiver_of_close_stops_and_closes(server):
    link, _ = open_session(server)
    link.send(data(1, b"echo me"), frame("close", code=Code.NORMAL, reconnect=True))
    link.expect_eof()  # and no echo of the data after our Close


def test_LL_CLOSE_3_going_away_on_stop(server):
    link, _ = open_session(server)
    server.proc.send_signal(signal.SIGTERM)
    link.expect_close(Code.GOING_AWAY, True)
    assert server.stop() == 0


def test_LL_CLOSE_4_protocol_error_ends_session(server):
    link, w = open_session(server)
    link.send(data(2))  # a gap
    link.expect_close(Code.PROTOCOL_ERROR, False)
    assert not resumed(server, w)


def test_LL_CLOSE_5_too_big_ends_session(make_server):
    server = make_server("--max-frame", "1024")
    link, w = open_session(server)
    link.send_raw(struct.pack(">I", 4096))
    link.expect_close(Code.TOO_BIG, False)
    assert not resumed(server, w)


def test_LL_CLOSE_6_application_closes_session(server):
    # lifeline-server --echo closes (reconnect=false) a session whose echo queue stays full
    # for 5 s. With a window of 1 we take one echo and never acknowledge it, and we send
    # (within the server's window, batch by batch) more than the queue holds.
    link, w = open_session(server, window_messages=1)
    batch = 8192
    for first in range(1, QUEUE_MAX + 2, batch):
        n = min(batch, QUEUE_MAX + 2 - first)
        link.send(*(data(first + i) for i in range(n)))
        ack_until(link, first + n - 1, timeout=10)
    c = link.expect_close(Code.SESSION_CLOSED, False, timeout=15)
    assert "queue full" in c.reason
    assert not resumed(server, w)


def test_LL_CLOSE_7_client_not_reading_dropped_without_close(make_server):
    server = make_server("--max-frame", "1024")  # the limit: 4 MiB + one max_frame unwritten
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # we read nothing: keep it small
    raw.connect(("127.0.0.1", server.port))
    link = wire.Link(server.ctx.wrap_socket(raw, server_hostname="localhost"))
    link.send(wire.hello())
    w = link.recv_kind("welcome", skip=())
    pings = b"".join(wire.encode(frame("ping", nonce=(1 << 63) + i, timestamp_us=(1 << 63) + i))
                     for i in range(20000))
    with pytest.raises(OSError):  # pongs pile up on the server until it drops us
        for _ in range(100):
            link.send_raw(pings)
    entry = server.wait_session(w.session_id, lambda s: s["state"] == "detached", what="the drop")
    assert entry["last_cause"] == "output_overflow"
    kinds = set()
    try:
        while True:
            kinds.add(link.recv(timeout=5).WhichOneof("kind"))
    except (wire.PeerGone, OSError):
        pass
    assert "close" not in kinds
    assert resumed(server, w)


@pytest.mark.parametrize("code, reconnect", [(Code.NORMAL, False), (Code.OVERLOADED, False),
                                             (Code.NORMAL, True), (Code.REJECTED, True)])
def test_LL_CLOSE_8_client_close_any_code_reconnect_decides(server, code, reconnect):
    link, w = open_session(server)
    link.send(frame("close", code=code, reason="bye", reconnect=reconnect))
    link.expect_eof()
    assert resumed(server, w) == reconnect
