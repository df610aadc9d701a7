"""Steps of the client tests: the driver plays the server for lifeline-cat."""
from wire import frame

SID, TOKEN = 77, b"T" * 16


def welcome(**fields):
    w = dict(version=1, session_id=SID, resume_token=TOKEN, heartbeat_interval_ms=5000,
             heartbeat_timeout_ms=15000, window_messages=16384, window_bytes=16 << 20, max_frame=16 << 20)
    w.update(fields)
    return frame("welcome", **w)


def greet(fake, **fields):
    """Accept the client's next connection, read its Hello and answer with a Welcome (fields
    over the defaults). Returns (link, hello)."""
    link = fake.accept()
    h = link.recv_kind("hello", skip=())
    link.send(welcome(**fields))
    return link, h
