"""§9 Data, acknowledgements and flow control, against lifeline-server."""
from steps import ack_until, data, open_session, recv_data, send_data
from wire import Code, frame


def test_LL_DATA_1_sequences_start_at_one(server):
    link, _ = open_session(server)
    link.send(data(1, b"a"))
    assert [(d.seq, d.payload) for d in recv_data(link, 1)] == [(1, b"a")]
    link.send(data(2, b"b"))
    assert [(d.seq, d.payload) for d in recv_data(link, 1)] == [(2, b"b")]


def test_LL_DATA_2_duplicates_dropped_silently(server):
    link, _ = open_session(server)
    link.send(data(1, b"a"), data(1, b"dup"), data(2, b"b"), data(1, b"dup"), data(3, b"c"))
    assert [d.payload for d in recv_data(link, 3)] == [b"a", b"b", b"c"]
    link.ping()


def test_LL_DATA_3_seq_zero_is_protocol_error(server):
    link, _ = open_session(server)
    link.send(data(0))
    link.expect_close(Code.PROTOCOL_ERROR, False)


def test_LL_DATA_4_gap_is_protocol_error(server):
    link, _ = open_session(server)
    link.send(data(1), data(3))
    link.expect_close(Code.PROTOCOL_ERROR, False)


def test_LL_DATA_5_payload_and_type_unchanged(server):
    link, _ = open_session(server)
    blob = bytes(range(256)) * 4
    link.send(data(1, blob, type="demo.Blob"), data(2, b""))
    got = recv_data(link, 2)
    assert [(d.payload, d.type) for d in got] == [(blob, "demo.Blob"), (b"", "")]


def test_LL_ACK_1_cumulative_ack_after_application_takes(make_server):
    server = make_server("--sink")
    link, w = open_session(server)
    send_data(link, b"1", b"2", b"3")
    assert ack_until(link, 3).seq == 3
    assert server.wait_session(w.session_id)["received"] == 3


def test_LL_ACK_2_ack_zero_is_legal(server):
    link, _ = open_session(server)
    link.send(frame("ack", seq=0))
    link.ping()


def test_LL_ACK_3_ack_below_acknowledged_ignored(server):
    link, w = open_session(server)
    send_data(link, b"1", b"2")
    recv_data(link, 2)
    link.send(frame("ack", seq=2), frame("ack", seq=1))
    link.ping()
    server.wait_session(w.session_id, lambda s: s["unacked"] == 0, what="the acks")


def test_LL_ACK_4_ack_beyond_sent_is_protocol_error(server):
    link, _ = open_session(server)
    send_data(link, b"1")
    recv_data(link, 1)
    link.send(frame("ack", seq=2))
    link.expect_close(Code.PROTOCOL_ERROR, False)


def held(server, w, queued, unacked):
    """Wait until the server holds back `queued` messages with `unacked` in flight."""
    server.wait_session(w.session_id, lambda s: (s["queued"], s["unacked"]) == (queued, unacked),
                        what=f"{queued} held back behind {unacked} in flight")


def test_LL_FLOW_1_message_window(server):
    link, w = open_session(server, window_messages=2)
    send_data(link, *[b"%d" % i for i in range(1, 6)])
    assert [d.seq for d in recv_data(link, 2)] == [1, 2]
    held(server, w, 3, 2)
    link.send(frame("ack", seq=2))
    assert [d.seq for d in recv_data(link, 2)] == [3, 4]
    held(server, w, 1, 2)
    link.send(frame("ack", seq=4))
    assert [d.seq for d in recv_data(link, 1)] == [5]


def test_LL_FLOW_2_byte_window(server):
    link, w = open_session(server, window_bytes=100)
    send_data(link, b"a" * 60, b"b" * 60)
    assert [d.seq for d in recv_data(link, 1)] == [1]
    held(server, w, 1, 1)  # 60 + 60 > 100: the second waits for the ack of the first
    link.send(frame("ack", seq=1))
    assert recv_data(link, 1)[0].payload == b"b" * 60


def test_LL_FLOW_3_message_larger_than_byte_window_alone(server):
    link, _ = open_session(server, window_bytes=10)
    send_data(link, b"z" * 60)
    assert recv_data(link, 1)[0].payload == b"z" * 60
