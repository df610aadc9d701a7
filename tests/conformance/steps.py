"""Steps many tests share: open a session, get a TLS ticket, send data, resume."""
import wire
from wire import frame


def open_session(server, **fields):
    """A new connection greeted with Hello(fields); returns (link, welcome)."""
    link = server.connect()
    link.send(wire.hello(**fields))
    return link, link.recv_kind("welcome", skip=())


def ticket(link):
    """The TLS 1.3 ticket the server issued on link (it comes right behind the Welcome, so
    a ping answered proves it has been read)."""
    link.ping(nonce=99)
    s = link.sock.session
    assert s is not None and s.has_ticket, "the server issued no session ticket"
    return s


def data(seq, payload=b"x", **kw):
    return frame("data", seq=seq, payload=payload, **kw)


def send_data(link, *payloads, first=1):
    link.send(*(data(first + i, p) for i, p in enumerate(payloads)))


def recv_data(link, n, timeout=wire.TIMEOUT):
    """The next n Data frames (acks, pongs between them passed over)."""
    return [link.recv_kind("data", timeout, skip=("ack", "pong")) for _ in range(n)]


def ack_until(link, seq, timeout=wire.TIMEOUT):
    """Read until the peer acknowledges seq (cumulatively)."""
    while True:
        a = link.recv_kind("ack", timeout)
        if a.seq >= seq:
            return a


def resumed(server, welcome, **fields):
    """Whether the server still knows the session: a resume on a new connection."""
    link, w = open_session(server, session_id=welcome.session_id,
                           resume_token=welcome.resume_token, **fields)
    link.close()
    return w.resumed
