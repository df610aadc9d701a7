"""§2 Transport and §3 Framing, against lifeline-server."""
import ssl
import struct
import warnings

import pytest

import wire
from steps import open_session
from wire import Code, frame


def test_LL_TLS_1_tls13_preferred_tls12_accepted_older_refused(server):
    link, _ = open_session(server)
    assert link.sock.version() == "TLSv1.3"
    ctx = wire.client_context(server.ca_file)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    link = wire.dial(ctx, server.port)
    link.send(wire.hello())
    w = link.recv_kind("welcome", skip=())
    assert link.sock.version() == "TLSv1.2" and w.version == 1
    old = wire.client_context(server.ca_file)
    with warnings.catch_warnings():  # deprecated, which is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version, old.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let our end offer TLS 1.1, so the refusal is the server's
    with pytest.raises(ssl.SSLError, match="alert protocol version"):  # the server's refusal
        wire.dial(old, server.port)


def test_LL_TLS_2_alpn_lifeline_1_required(server):
    link, _ = open_session(server)
    assert link.sock.selected_alpn_protocol() == "lifeline/1"
    with pytest.raises(ssl.SSLError, match="no application protocol"):
        server.connect(alpn=False)


def test_LL_FRAME_1_frames_split_and_joined_across_records(server):
    link = server.connect()
    for b in wire.encode(wire.hello()):  # one TLS record per byte
        link.send_raw(bytes([b]))
    assert link.recv_kind("welcome", skip=()).version == 1
    link.send(frame("ping", nonce=1), frame("ping", nonce=2))  # two frames, one record
    assert [link.recv_kind("pong", skip=()).nonce for _ in range(2)] == [1, 2]


def test_LL_FRAME_2_zero_length_frame_is_protocol_error(server):
    link, _ = open_session(server)
    link.send_raw(b"\0\0\0\0")
    link.expect_close(Code.PROTOCOL_ERROR, False)


def test_LL_FRAME_3_oversized_length_rejected_before_body(make_server):
    server = make_server("--max-frame", "1024")
    link, _ = open_session(server)
    link.send_raw(struct.pack(">I", 1025))  # the length alone: no body ever follows
    link.expect_close(Code.TOO_BIG, False)


@pytest.mark.parametrize("body", [b"\x0a\xff\x01", b"\x78\x01"], ids=["unparsable", "no-kind"])
def test_LL_FRAME_4_bad_body_is_protocol_error(server, body):
    link, _ = open_session(server)
    link.send_raw(wire.encode(body))
    link.expect_close(Code.PROTOCOL_ERROR, False)


def test_LL_FRAME_5_unknown_fields_ignored(server):
    inner = wire.pb.Hello(version=1).SerializeToString() + b"\xa0\x01\x05"  # Hello field 20 = 5
    body = b"\x0a" + bytes([len(inner)]) + inner + b"\x90\x03\x01"  # Frame field 50 = 1
    link = server.connect()
    link.send_raw(wire.encode(body))
    assert link.recv_kind("welcome", skip=()).version == 1
    link.ping()
