"""Tests of the Python binding against the real library, over loopback TLS.

Run: /usr/bin/python3 -m unittest discover -s bindings/python/tests -v
Environment: LIFELINE_LIBRARY (the .so to load), LIFELINE_BIN (where lifeline-server is;
default: the bin/ beside the library's lib/).
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import functools
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package beside this directory, not an installed one

import lifeline  # noqa: E402
from lifeline import _native  # noqa: E402

WAIT = 10.0  # seconds: generous bound for anything that should happen "soon"

_tmp = tempfile.TemporaryDirectory(prefix="lifeline-py-")
CERTS = lifeline.dev_certs(os.path.join(_tmp.name, "certs"))
OTHER_CERTS = lifeline.dev_certs(os.path.join(_tmp.name, "other"))  # a CA the server does not use


def tearDownModule() -> None:
    _tmp.cleanup()


@functools.lru_cache(maxsize=None)
def protobuf_classes():
    """Two message classes built at run time from a descriptor (no protoc needed)."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:
        return None
    fp = descriptor_pb2.FileDescriptorProto(name="lltest.proto", package="lltest", syntax="proto3")
    f = descriptor_pb2.FieldDescriptorProto
    ping = fp.message_type.add(name="Ping")
    ping.field.add(name="n", number=1, type=f.TYPE_UINT32, label=f.LABEL_OPTIONAL)
    ping.field.add(name="text", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    pong = fp.message_type.add(name="Pong")
    pong.field.add(name="ok", number=1, type=f.TYPE_BOOL, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with other tests' types
    pool.Add(fp)

    def message_class(name):
        desc = pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
            return message_factory.GetMessageClass(desc)
        return message_factory.MessageFactory(pool).GetPrototype(desc)

    return message_class("lltest.Ping"), message_class("lltest.Pong")


class EchoServer:
    """An in-process Server and a Python thread that sends every message back, type kept."""

    def __init__(self, **kw):
        self.server = lifeline.Server("127.0.0.1:0", dev_certs=CERTS.dir, **kw)
        self.port = self.server.port
        self.thread = threading.Thread(target=self._run, name="echo", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for m in self.server:
            try:
                self.server.send(m.session, m.data, timeout=WAIT, type_name=m.type)
            except lifeline.NotFoundError:
                pass  # the session ended meanwhile

    def stop(self) -> None:
        self.server.__exit__(None, None, None)
        self.thread.join(WAIT)


def connect(port: int, **kw) -> lifeline.Client:
    kw.setdefault("ca_file", CERTS.ca)
    return lifeline.Client("127.0.0.1", port, **kw)


def in_thread(fn, *args):
    """Run fn in a thread; returns (thread, result dict with 'value' or 'error')."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def wait_for(cond, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


# ---------------------------------------------------------------------------------------


class TestBinding(unittest.TestCase):
    """The ctypes mirror of the headers, and the error table."""

    def test_structs_match_the_c_headers(self):
        cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        include = HERE.parent.parent.parent / "sdk" / "include"
        if not cc or not (include / "lifeline" / "server.h").exists():
            self.skipTest("no C compiler or headers to compare with")
        structs = [_native.sdk_event, _native.sdk_config, _native.sdk_message, _native.sdk_stats,
                   _native.sdk_session_event, _native.sdk_server_config, _native.sdk_session_info]
        lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <lifeline/server.h>",
                 "int main(void) {"]
        expected = []
        for s in structs:
            name = s.__name__
            lines.append(f'printf("{name} %zu\\n", sizeof({name}));')
            expected.append(f"{name} {ctypes.sizeof(s)}")
            for field, _ in s._fields_:
                lines.append(f'printf("{name}.{field} %zu %zu\\n", offsetof({name}, {field}), '
                             f"sizeof((({name} *)0)->{field}));")
                desc = getattr(s, field)
                expected.append(f"{name}.{field} {desc.offset} {desc.size}")
        lines.append("return 0; }")
        with tempfile.TemporaryDirectory() as d:
            src, exe = os.path.join(d, "layout.c"), os.path.join(d, "layout")
            Path(src).write_text("\n".join(lines) + "\n")
            subprocess.run([cc, "-std=c11", "-I", str(include), src, "-o", exe], check=True,
                           capture_output=True, timeout=60)
            got = subprocess.run([exe], check=True, capture_output=True, text=True).stdout.split("\n")
        self.assertEqual([g for g in got if g], expected)

    def test_every_code_has_its_class(self):
        self.assertEqual(lifeline.CODES["SDK_OK"], 0)
        for name, code in lifeline.CODES.items():
            if code == 0:
                continue
            cls = lifeline.error_class(code)
            self.assertTrue(issubclass(cls, lifeline.Error), name)
            e = cls(code, None, "why")
            self.assertEqual((e.code, e.name, e.detail), (code, name, "why"))
            self.assertIn(name, str(e))
            self.assertIn("why", str(e))
        by_name = {n: lifeline.error_class(c) for n, c in lifeline.CODES.items() if c}
        self.assertIs(by_name["SDK_ETIMEDOUT"], lifeline.TimeoutError)
        self.assertIs(by_name["SDK_ECLOSED"], lifeline.ClosedError)
        self.assertIs(by_name["SDK_ETLS"], lifeline.TLSError)
        self.assertIs(by_name["SDK_EPEERAUTH"], lifeline.PeerAuthError)
        self.assertIs(by_name["SDK_ECONNREFUSED"], lifeline.ConnectionRefusedError)
        self.assertIs(by_name["SDK_EQUEUEFULL"], lifeline.QueueFullError)
        self.assertIs(by_name["SDK_ETOOBIG"], lifeline.TooBigError)
        self.assertIs(by_name["SDK_EPROTO"], lifeline.ProtocolError)
        self.assertIs(by_name["SDK_EREJECTED"], lifeline.RejectedError)
        self.assertIs(by_name["SDK_ENOTFOUND"], lifeline.NotFoundError)
        self.assertIs(by_name["SDK_ETYPE"], lifeline.TypeMismatchError)
        self.assertTrue(issubclass(lifeline.TimeoutError, builtins.TimeoutError))
        self.assertTrue(issubclass(lifeline.ConnectionRefusedError, builtins.ConnectionRefusedError))
        self.assertTrue(issubclass(lifeline.PeerAuthError, lifeline.TLSError))

    def test_settings_are_range_checked(self):
        with self.assertRaises(ValueError):
            lifeline.Client("127.0.0.1", 70000)  # would wrap to 4464 in a uint16_t
        with self.assertRaises(ValueError):
            lifeline.Client("127.0.0.1", 1, connect_timeout=2**31 / 1000)
        with self.assertRaises(TypeError):
            lifeline.Client("127.0.0.1", 1, max_frame="big")
        # In range for the C type but refused by the library, with its reason.
        with self.assertRaises(lifeline.InvalidArgumentError) as cm:
            lifeline.Client("127.0.0.1", 1, max_frame=10)
        self.assertIn("out of range", cm.exception.detail)


    def test_durations_are_seconds(self):
        # connect_timeout=0.25 s is 250 ms: a silent listener times the connect out in about that.
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)  # accepts TCP, never answers TLS
        started = time.monotonic()
        with self.assertRaises(lifeline.Error):
            lifeline.Client("127.0.0.1", holder.getsockname()[1], ca_file=CERTS.ca, connect_timeout=0.25)
        self.assertLess(time.monotonic() - started, 3.0)
        with self.assertRaises(ValueError):
            lifeline.Client("127.0.0.1", 1, heartbeat_interval=float("inf"))
        with self.assertRaises(TypeError):
            lifeline.Client("127.0.0.1", 1, heartbeat_interval="5")
        with self.assertRaises(TypeError):
            lifeline.Client("127.0.0.1", 1, reconnect_policy={"refused": "sometimes"})

    def test_millisecond_names_are_deprecated_aliases(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        with self.assertWarnsRegex(DeprecationWarning, r"connect_timeout_ms=\) is deprecated: use connect_timeout="):
            with lifeline.Client("127.0.0.1", holder.getsockname()[1], ca_file=CERTS.ca,
                                 retry_on_first_connect=True, connect_timeout_ms=500):
                pass
        with self.assertRaisesRegex(TypeError, "not both"):
            lifeline.Client("127.0.0.1", 1, connect_timeout=1, connect_timeout_ms=1000)
        with self.assertRaisesRegex(TypeError, "unexpected keyword argument 'no_such_ms'"):
            lifeline.Client("127.0.0.1", 1, no_such_ms=1)
        with self.assertRaisesRegex(TypeError, "unexpected keyword argument 'ca'"):
            lifeline.Client("127.0.0.1", 1, ca="x")
        with self.assertWarns(DeprecationWarning):
            with lifeline.Server(cert_file=CERTS.server_cert, key_file=CERTS.server_key, session_ttl_ms=5000):
                pass
        ev = lifeline.Event("RECONNECTING", "SDK_OK", "", 1, 0.25, False)
        with self.assertWarns(DeprecationWarning):
            self.assertEqual(ev.delay_ms, 250)

    def test_exceptions_subclass_the_builtins(self):
        self.assertTrue(issubclass(lifeline.InvalidArgumentError, ValueError))
        self.assertTrue(issubclass(lifeline.TooBigError, ValueError))
        self.assertTrue(issubclass(lifeline.DisconnectedError, builtins.ConnectionError))
        self.assertTrue(issubclass(lifeline.ConnectError, builtins.ConnectionError))
        self.assertTrue(issubclass(lifeline.PeerAuthError, builtins.ConnectionError))
        self.assertTrue(issubclass(lifeline.NotFoundError, LookupError))
        self.assertTrue(issubclass(lifeline.ListenError, OSError))
        # `from lifeline import *` leaves the builtin names alone.
        scope: dict = {}
        exec("from lifeline import *", scope)
        self.assertNotIn("TimeoutError", scope)
        self.assertNotIn("ConnectionRefusedError", scope)
        self.assertIn("Client", scope)

    def test_configs_carry_their_size(self):
        # The library reads only cfg.size bytes: the mirror passes its own sizeof.
        for cls in (_native.sdk_config, _native.sdk_server_config):
            cfg = cls()
            _native.init_config(cfg)
            self.assertEqual(cfg.size, ctypes.sizeof(cls))
        cfg = _native.sdk_config()
        self.assertNotEqual(_native.lib.sdk_config_init_sized(ctypes.byref(cfg), 4), 0)

    def test_parse_address_is_the_library_syntax(self):
        self.assertEqual(lifeline.parse_address("[::1]:7443"), ("::1", 7443))
        self.assertEqual(lifeline.parse_address("example.com:0"), ("example.com", 0))
        for bad in ("::1:7443", "host", "host:65536", "[::1]"):
            with self.assertRaises(ValueError):
                lifeline.parse_address(bad)

    def test_every_enum_has_its_c_name(self):
        lib = _native.lib
        self.assertEqual(lib.sdk_event_name(4), b"session_lost")
        self.assertEqual(lib.sdk_session_event_name(3), b"expired")
        self.assertEqual(lib.sdk_session_state_name(1), b"detached")
        self.assertEqual(lib.sdk_event_name(99), b"unknown")

    def test_address_or_host_and_port(self):
        with self.assertRaises(lifeline.InvalidArgumentError) as cm:
            lifeline.Client("127.0.0.1", 1, address="127.0.0.1:1")
        self.assertIn("not both", cm.exception.detail)
        with self.assertRaises(lifeline.InvalidArgumentError) as cm:
            lifeline.Client(address="::1:1")
        self.assertIn("bad address", cm.exception.detail)


class TestClient(unittest.TestCase):
    """A client against an in-process echo server."""

    @classmethod
    def setUpClass(cls):
        cls.echo = EchoServer()

    @classmethod
    def tearDownClass(cls):
        cls.echo.stop()

    def connect(self, **kw) -> lifeline.Client:
        c = connect(self.echo.port, **kw)
        self.addCleanup(c.__exit__, None, None, None)
        return c

    def test_connect_by_address(self):
        with lifeline.Client(address=f"127.0.0.1:{self.echo.port}", ca_file=CERTS.ca) as c:
            c.send(b"by address")
            self.assertEqual(c.recv(timeout=WAIT).data, b"by address")

    def test_round_trip_bytes(self):
        c = self.connect()
        big = os.urandom(1 << 20)
        for payload in (b"hello", b"", bytearray(b"\x00\x01\x02"), big):
            c.send(payload)
            m = c.recv(timeout=WAIT)
            self.assertEqual(m.data, bytes(payload))
            self.assertIsNone(m.type)
            self.assertEqual(m.session, 0)
        self.assertGreater(m.seq, 0)
        with self.assertRaises(TypeError):
            c.send("text is not bytes")

    def test_send_returns_client_sequences(self):
        c = self.connect()
        first = c.send(b"a")
        self.assertGreaterEqual(first, 1)
        self.assertEqual(c.send(b"b"), first + 1)
        self.assertEqual(c.send(b"c", type_name="t.T"), first + 2)
        c.flush_to(first + 1, timeout=WAIT)
        c.flush_to(0, timeout=WAIT)
        with self.assertRaises(lifeline.InvalidArgumentError):
            c.flush_to(first + 100, timeout=WAIT)
        for _ in range(3):
            self.assertEqual(c.recv(timeout=WAIT).flags, 0)
        c.close()
        with self.assertRaises(lifeline.ClosedError):
            c.flush_to(first, timeout=WAIT)

    def test_iteration_drains_then_stops_at_close(self):
        c = self.connect()
        for i in range(5):
            c.send(b"m%d" % i)
        self.assertTrue(wait_for(lambda: c.stats()["msgs_received"] == 5))
        c.close()  # what already arrived is still delivered, then iteration ends
        self.assertEqual([m.data for m in c], [b"m%d" % i for i in range(5)])

    def test_blocking_recv_releases_the_gil(self):
        c = self.connect()
        count = [0]
        stop = threading.Event()

        def counter():
            while not stop.is_set():
                count[0] += 1
                time.sleep(0.001)

        ticker = threading.Thread(target=counter, daemon=True)
        ticker.start()
        self.addCleanup(stop.set)
        # Not the main thread: one foreign call waits the whole 5 s, no slicing.
        receiver, result = in_thread(c.recv, 5.0)
        time.sleep(0.2)
        before = count[0]
        time.sleep(0.5)  # were the GIL held, neither this thread nor the counter would run
        advanced = count[0] - before
        self.assertTrue(receiver.is_alive(), result)
        self.assertGreaterEqual(advanced, 50)
        c.send(b"wake up")
        receiver.join(WAIT)
        self.assertEqual(result["value"].data, b"wake up")

    def test_recv_timeout(self):
        c = self.connect()
        t0 = time.monotonic()
        with self.assertRaises(lifeline.TimeoutError) as cm:
            c.recv(timeout=0.3)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.29)
        self.assertLess(elapsed, 2.0)
        self.assertIsInstance(cm.exception, builtins.TimeoutError)
        self.assertEqual(cm.exception.name, "SDK_ETIMEDOUT")
        with self.assertRaises(lifeline.TimeoutError):
            c.recv(timeout=0)
        with self.assertRaises(ValueError):
            c.recv(timeout=-1)

    def test_ctrl_c_interrupts_a_blocked_recv(self):
        class Interrupted(Exception):
            pass

        def handler(signum, frame):
            raise Interrupted()

        c = self.connect()
        old = signal.signal(signal.SIGINT, handler)
        try:
            import _thread

            timer = threading.Timer(0.3, _thread.interrupt_main)
            timer.start()
            t0 = time.monotonic()
            with self.assertRaises(Interrupted):
                c.recv()  # no timeout: sliced on the main thread
            self.assertLess(time.monotonic() - t0, 3.0)
            timer.join()
        finally:
            signal.signal(signal.SIGINT, old)
        c.send(b"still fine")
        self.assertEqual(c.recv(timeout=WAIT).data, b"still fine")

    def test_send_after_close_raises_closed(self):
        c = self.connect()
        c.close()
        c.close()  # harmless twice
        with self.assertRaises(lifeline.ClosedError):
            c.send(b"too late")
        with self.assertRaises(lifeline.ClosedError):
            c.recv(timeout=0)
        self.assertEqual(c.state, "closed")
        self.assertEqual(c.stats()["state"], "closed")  # works after close

    def test_close_wakes_a_blocked_recv(self):
        c = self.connect()
        receiver, result = in_thread(c.recv)
        time.sleep(0.2)
        self.assertTrue(receiver.is_alive())
        t0 = time.monotonic()
        c.close()
        receiver.join(WAIT)
        self.assertFalse(receiver.is_alive())
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertIsInstance(result.get("error"), lifeline.ClosedError)

    def test_leaving_with_block_while_recv_blocked_frees_after(self):
        receivers = []
        with connect(self.echo.port) as c:
            for _ in range(3):
                receivers.append(in_thread(c.recv))
            time.sleep(0.2)
        for t, result in receivers:
            t.join(WAIT)
            self.assertFalse(t.is_alive())
            self.assertIsInstance(result.get("error"), lifeline.ClosedError)
        self.assertTrue(c._handle.freed)  # the last thread out freed it
        self.assertEqual(c.state, "closed")
        with self.assertRaises(lifeline.ClosedError):
            c.stats()

    def test_typed_protobuf_messages(self):
        classes = protobuf_classes()
        if classes is None:
            self.skipTest("google.protobuf is not installed")
        Ping, Pong = classes
        c = self.connect()
        c.send(Ping(n=7, text="seven"))
        got = c.recv(timeout=WAIT, expect=Ping)
        self.assertIsInstance(got, Ping)
        self.assertEqual((got.n, got.text), (7, "seven"))

        c.send(Pong(ok=True))
        with self.assertRaises(lifeline.TypeMismatchError) as cm:
            c.recv(timeout=WAIT, expect=Ping)
        kept = cm.exception.message  # the message is not lost with the exception
        self.assertEqual(kept.type, "lltest.Pong")
        self.assertTrue(kept.parse(Pong).ok)

        c.send(b"raw")
        with self.assertRaises(lifeline.TypeMismatchError) as cm:
            c.recv(timeout=WAIT, expect=Ping)
        self.assertEqual(cm.exception.message.data, b"raw")

        c.send(b"\xff\xff", type_name="lltest.Ping")  # labelled Ping, but not one
        with self.assertRaises(lifeline.ProtocolError) as cm:
            c.recv(timeout=WAIT, expect=Ping)
        self.assertEqual(cm.exception.message.data, b"\xff\xff")

    def test_stats_has_every_field(self):
        c = self.connect()
        c.send(b"x")
        c.recv(timeout=WAIT)
        c.flush(timeout=WAIT)
        st = c.stats()
        self.assertEqual(set(st), {name for name, _ in _native.sdk_stats._fields_})
        self.assertEqual(st["state"], "connected")
        self.assertEqual(c.state, "connected")
        self.assertGreaterEqual(st["msgs_sent"], 1)
        self.assertEqual(st["msgs_received"], 1)
        self.assertEqual(st["connects"], 1)
        self.assertEqual(c.last_error(), ("SDK_OK", ""))

    def test_on_event_reports_connecting_and_connected(self):
        events = []
        c = self.connect(on_event=events.append)
        self.assertTrue(wait_for(lambda: [e.type for e in events][:2] == ["CONNECTING", "CONNECTED"]))
        first, second = events[0], events[1]
        self.assertIsInstance(first, lifeline.Event)
        self.assertEqual((first.attempt, first.error), (1, "SDK_OK"))
        self.assertFalse(second.resumed)
        c.close()
        self.assertEqual(events[-1].type, "CLOSED")

    def test_on_event_exception_is_logged_not_raised(self):
        def bad(event):
            raise RuntimeError("callback bug")

        with self.assertLogs("lifeline", "ERROR") as logs:
            c = self.connect(on_event=bad)
            c.send(b"works anyway")
            self.assertEqual(c.recv(timeout=WAIT).data, b"works anyway")
            c.close()
        self.assertIn("callback bug", "\n".join(logs.output))

    def test_too_big(self):
        c = self.connect(max_frame=1024)
        with self.assertRaises(lifeline.TooBigError) as cm:
            c.send(b"x" * 4096)
        # The size, the limit and whose limit it is.
        self.assertIn("4096 bytes", cm.exception.detail)
        self.assertIn("this client's max_frame of 1024 bytes", cm.exception.detail)
        self.assertIn("max_frame of 1024", str(cm.exception))

    def test_concurrent_senders_and_receivers(self):
        c = self.connect()
        n_threads, per_thread = 4, 100
        got = []
        lock = threading.Lock()

        def sender(k):
            for i in range(per_thread):
                c.send(b"%d:%d" % (k, i))

        def receiver():
            while True:
                try:
                    m = c.recv(timeout=WAIT)
                except lifeline.Error:
                    return
                with lock:
                    got.append(m.data)
                    if len(got) == n_threads * per_thread:
                        return

        threads = [threading.Thread(target=sender, args=(k,)) for k in range(n_threads)]
        threads += [threading.Thread(target=receiver) for _ in range(2)]
        for t in threads:
            t.start()
        self.assertTrue(wait_for(lambda: len(got) == n_threads * per_thread))
        c.close()  # wakes the receiver still waiting
        for t in threads:
            t.join(WAIT)
        self.assertEqual(sorted(got), sorted(b"%d:%d" % (k, i) for k in range(n_threads) for i in range(per_thread)))


class TestMessageCallbacks(unittest.TestCase):
    """on_message on both ends: messages arrive on the I/O threads, in order, and replies
    sent from there go out; the recv calls refuse."""

    def test_echo_between_callbacks(self):
        got = []
        lock = threading.Lock()
        holder = {}

        def echo(m):
            holder["server"].send(m.session, m.data, timeout=WAIT, type_name=m.type)

        def take(m):
            with lock:
                got.append(m)

        server = lifeline.Server("127.0.0.1:0", dev_certs=CERTS.dir, on_message=echo)
        holder["server"] = server
        client = connect(server.port, on_message=take)
        try:
            for i in range(200):
                client.send(i.to_bytes(4, "big"), type_name="test.Count")
            self.assertTrue(wait_for(lambda: len(got) == 200))
            client.flush(timeout=WAIT)  # taken by the callback: acknowledged
            self.assertEqual([int.from_bytes(m.data, "big") for m in got], list(range(200)))
            self.assertEqual({m.type for m in got}, {"test.Count"})
            with self.assertRaises(lifeline.InvalidArgumentError):
                client.recv(timeout=0)
            with self.assertRaises(lifeline.InvalidArgumentError):
                server.recv(timeout=0)
        finally:
            client.close()
            server.__exit__(None, None, None)

    def test_server_on_several_io_threads(self):
        echo = EchoServer(io_threads=2)
        try:
            clients = [connect(echo.port) for _ in range(4)]  # two on each thread
            for i, c in enumerate(clients):
                c.send(b"x%d" % i)
            for i, c in enumerate(clients):
                self.assertEqual(c.recv(timeout=WAIT).data, b"x%d" % i)
            for c in clients:
                c.close()
        finally:
            echo.stop()
        with self.assertRaises(lifeline.InvalidArgumentError):  # over SDK_IO_THREADS_MAX
            lifeline.Server("127.0.0.1:0", dev_certs=CERTS.dir, io_threads=65)

    def test_server_with_a_store(self):
        echo = EchoServer(store="memory:")
        try:
            with connect(echo.port) as c:
                c.send(b"stored")
                self.assertEqual(c.recv(timeout=WAIT).data, b"stored")
        finally:
            echo.stop()
        keyed = EchoServer(store="memory:", ticket_key_rotation=60, ticket_keys_live=4, takeover_timeout=0.2)
        keyed.stop()
        with self.assertRaises(lifeline.InvalidArgumentError):  # the I/O thread would wait that long
            lifeline.Server("127.0.0.1:0", dev_certs=CERTS.dir, store="memory:", takeover_timeout=11)
        with self.assertRaises(lifeline.InvalidArgumentError):  # 1 key cannot rotate
            lifeline.Server("127.0.0.1:0", dev_certs=CERTS.dir, store="memory:", ticket_keys_live=1)
        with self.assertRaises(lifeline.InvalidArgumentError) as bad:
            lifeline.Server("127.0.0.1:0", dev_certs=CERTS.dir, store="mysql://127.0.0.1")
        self.assertIn("mysql", str(bad.exception))
        with socket.socket() as s:  # a port nobody listens on: the store is unreachable
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with self.assertRaises(lifeline.ConnectionRefusedError) as down:
            lifeline.Server("127.0.0.1:0", dev_certs=CERTS.dir, store=f"redis://127.0.0.1:{port}",
                            store_timeout=0.5)
        self.assertIn(str(port), str(down.exception))

    def test_store_sync_always_with_manual_acks(self):
        server = lifeline.Server("127.0.0.1:0", dev_certs=CERTS.dir, store="memory:", store_sync="always",
                                 manual_ack=True)
        try:
            with connect(server.port) as c:
                for i in range(3):
                    c.send(bytes([i]))
                got = [server.recv(timeout=WAIT) for _ in range(3)]
                self.assertEqual([m.data for m in got], [b"\x00", b"\x01", b"\x02"])
                self.assertFalse(any(m.redelivered for m in got))
                with self.assertRaises(lifeline.TimeoutError):
                    c.flush(timeout=0.3)  # taken, not acknowledged
                server.ack(got[1])
                server.reply(got[2], b"done")  # the reply acknowledges the last one
                c.flush(timeout=WAIT)
                self.assertEqual(c.recv(timeout=WAIT).data, b"done")
        finally:
            server.stop()
        with self.assertRaises(ValueError):
            lifeline.Server("127.0.0.1:0", dev_certs=CERTS.dir, store="memory:", store_sync="sometimes")

    def test_on_message_exception_is_logged_not_raised(self):
        def bad(m):
            raise RuntimeError("message callback bug")

        echo = EchoServer()
        try:
            with self.assertLogs("lifeline", "ERROR") as logs:
                c = connect(echo.port, on_message=bad)
                c.send(b"x")
                c.flush(timeout=WAIT)  # the echo comes after the ack
                self.assertTrue(wait_for(lambda: "message callback bug" in "\n".join(logs.output)))
                self.assertEqual(c.stats()["msgs_received"], 1)
                c.close()
        finally:
            echo.stop()


class TestEndpoints(unittest.TestCase):
    """Client(endpoints=[...]): several servers of one service (sdk_config.endpoints)."""

    def test_skips_a_dead_entry_and_moves_on_after_going_away(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        first, second = EchoServer(), EchoServer()
        self.addCleanup(first.stop)
        self.addCleanup(second.stop)
        eps = [f"127.0.0.1:{holder.getsockname()[1]}", f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
        with lifeline.Client(endpoints=eps, keep_endpoint_order=True, ca_file=CERTS.ca, reconnect_min_ms=10,
                             reconnect_max_ms=100) as c:
            self.assertEqual(c.endpoint, (1, eps[1]))
            c.send(b"one")
            self.assertEqual(c.recv(timeout=WAIT).data, b"one")
            first.stop()  # GOING_AWAY: the next endpoint, not the dead first entry
            self.assertTrue(wait_for(lambda: c.state == "connected" and c.endpoint[0] == 2))
            self.assertEqual(c.endpoint, (2, eps[2]))
            c.send(b"two")
            self.assertEqual(c.recv(timeout=WAIT).data, b"two")
            st = c.stats()
            self.assertEqual((st["connects"], st["sessions_lost"]), (2, 1))
            c.close()
            self.assertEqual(c.endpoint, (2, eps[2]))  # works after close()

    def test_bad_lists(self):
        with self.assertRaises(TypeError):
            lifeline.Client(endpoints="127.0.0.1:1")
        with self.assertRaises(lifeline.InvalidArgumentError) as cm:
            lifeline.Client(endpoints=[])
        self.assertIn("1 to 64", cm.exception.detail)
        with self.assertRaises(lifeline.InvalidArgumentError) as cm:
            lifeline.Client(endpoints=["127.0.0.1:1", "::1:1"])
        self.assertIn("endpoints[1]", cm.exception.detail)
        with self.assertRaises(lifeline.InvalidArgumentError) as cm:
            lifeline.Client(endpoints=["127.0.0.1:1"], address="127.0.0.1:1")
        self.assertIn("not both", cm.exception.detail)


class TestConnectFailures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = EchoServer()

    @classmethod
    def tearDownClass(cls):
        cls.echo.stop()

    def test_wrong_ca_is_a_peer_auth_error(self):
        with self.assertRaises(lifeline.PeerAuthError) as cm:
            connect(self.echo.port, ca_file=OTHER_CERTS.ca)
        self.assertIsInstance(cm.exception, lifeline.TLSError)
        self.assertIn("certificate verify failed", cm.exception.detail)
        self.assertIn("certificate verify failed", str(cm.exception))

    def test_wrong_host_name_is_a_peer_auth_error(self):
        with self.assertRaises(lifeline.PeerAuthError) as cm:
            connect(self.echo.port, servername="not-the-server.example")
        self.assertIn("certificate verify failed", cm.exception.detail)

    def test_connection_refused(self):
        # A bound socket that does not listen: the kernel refuses, and nobody can take the port.
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with self.assertRaises(lifeline.ConnectionRefusedError) as cm:
            connect(port)
        self.assertIsInstance(cm.exception, builtins.ConnectionRefusedError)
        self.assertEqual(cm.exception.errno, errno.ECONNREFUSED)
        self.assertEqual(cm.exception.name, "SDK_ECONNREFUSED")

    def test_flush_timeout_says_why(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        with connect(holder.getsockname()[1], retry_on_first_connect=True, reconnect_min=0.001,
                     reconnect_max=0.005) as c:
            seq = c.send(b"never delivered")
            with self.assertRaises(lifeline.TimeoutError) as cm:
                c.flush(timeout=0.3)
            self.assertIn("SDK_ECONNREFUSED", cm.exception.detail)
            self.assertIn("Connection refused", str(cm.exception))
            with self.assertRaises(lifeline.TimeoutError) as cm:
                c.flush_to(seq, timeout=0.1)
            self.assertIn("SDK_ECONNREFUSED", cm.exception.detail)

    def test_reconnect_policy_stop_on_refused(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        events = []
        with connect(holder.getsockname()[1], retry_on_first_connect=True,
                     reconnect_policy={"refused": "stop", "reset": (0.01, 0.02)}, on_event=events.append) as c:
            with self.assertRaises(lifeline.ClosedError):
                c.recv(timeout=WAIT)
            self.assertEqual(c.last_error()[0], "SDK_ECONNREFUSED")
        self.assertEqual([e.type for e in events].count("CONNECTING"), 1)
        self.assertNotIn("RECONNECTING", [e.type for e in events])
        with self.assertRaises(lifeline.InvalidArgumentError):
            connect(holder.getsockname()[1], reconnect_policy={"no-such-cause": "stop"})
        with self.assertRaises(lifeline.InvalidArgumentError):  # max_ms below min_ms: sdk_connect says no
            connect(holder.getsockname()[1], reconnect_policy={"refused": (0.05, 0.01)})

    def test_gives_up_and_says_why(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        events = []
        with connect(holder.getsockname()[1], retry_on_first_connect=True, reconnect_min=0.001,
                     reconnect_max=0.005, max_reconnect_attempts=2, on_event=events.append) as c:
            with self.assertRaises(lifeline.ClosedError) as cm:
                c.recv(timeout=WAIT)
            self.assertEqual(c.state, "closed")
            self.assertEqual(c.last_error()[0], "SDK_ECONNREFUSED")
        self.assertTrue(cm.exception.detail)  # the library closed it: the cause travels along
        self.assertEqual(events[-1].type, "CLOSED")
        self.assertEqual(events[-1].error, "SDK_ECONNREFUSED")


class TestServer(unittest.TestCase):
    def test_sessions_lists_the_client(self):
        events = []
        with lifeline.Server(dev_certs=CERTS.dir, on_event=events.append) as srv, connect(srv.port) as c:
            c.send(b"hi")
            m = srv.recv(timeout=WAIT)
            self.assertEqual(m.data, b"hi")
            sessions = srv.sessions()
            self.assertEqual(len(sessions), 1)
            s = sessions[0]
            self.assertEqual(set(s), {name for name, _ in _native.sdk_session_info._fields_})
            self.assertEqual(s["id"], m.session)
            self.assertEqual(s["state"], "connected")
            self.assertTrue(s["peer_addr"].startswith("127.0.0.1:"), s["peer_addr"])
            self.assertEqual(s["peer_identity"], "")
            self.assertEqual(s["last_cause"], "none")
            self.assertEqual((s["received"], s["connections"]), (1, 1))
            srv.send(m.session, b"reply")
            self.assertEqual(c.recv(timeout=WAIT).data, b"reply")
            self.assertTrue(wait_for(lambda: any(e.type == "OPENED" for e in events)))
            opened = [e for e in events if e.type == "OPENED"][0]
            self.assertIsInstance(opened, lifeline.SessionEvent)
            self.assertEqual(opened.session, m.session)

    def test_typed_send_from_the_server(self):
        classes = protobuf_classes()
        if classes is None:
            self.skipTest("google.protobuf is not installed")
        Ping, _ = classes
        with lifeline.Server(dev_certs=CERTS.dir) as srv, connect(srv.port) as c:
            c.send(Ping(n=1))
            got = srv.recv(timeout=WAIT)
            self.assertEqual(got.type, "lltest.Ping")
            self.assertEqual(got.parse(Ping).n, 1)
            srv.send(got.session, Ping(n=2))
            self.assertEqual(c.recv(timeout=WAIT, expect=Ping).n, 2)

    def test_close_session_without_reconnect_rejects_the_client(self):
        with lifeline.Server(dev_certs=CERTS.dir) as srv, connect(srv.port) as c:
            c.send(b"hi")
            session = srv.recv(timeout=WAIT).session
            srv.close_session(session, "go away", reconnect_allowed=False)
            with self.assertRaises(lifeline.RejectedError) as cm:  # also a ClosedError
                c.recv(timeout=WAIT)
            self.assertIsInstance(cm.exception, lifeline.ClosedError)
            self.assertIn("go away", cm.exception.detail)
            self.assertEqual(c.last_error()[0], "SDK_EREJECTED")
            with self.assertRaises(lifeline.NotFoundError):
                srv.close_session(session, "again")

    def test_send_to_unknown_session(self):
        with lifeline.Server(dev_certs=CERTS.dir) as srv:
            with self.assertRaises(lifeline.NotFoundError):
                srv.send(12345, b"nobody")
            self.assertEqual(srv.sessions(), [])

    def test_stop_wakes_a_blocked_recv(self):
        srv = lifeline.Server(dev_certs=CERTS.dir)
        receiver, result = in_thread(srv.recv)
        time.sleep(0.2)
        srv.stop()
        receiver.join(WAIT)
        self.assertIsInstance(result.get("error"), lifeline.ClosedError)
        with self.assertRaises(lifeline.ClosedError):
            srv.sessions()
        srv.__exit__(None, None, None)
        self.assertTrue(srv._handle.freed)

    def test_bad_certificate_files(self):
        with self.assertRaises(lifeline.TLSError) as cm:
            lifeline.Server(cert_file=os.path.join(_tmp.name, "missing.pem"), key_file=CERTS.server_key)
        self.assertTrue(cm.exception.detail)
        with self.assertRaises(lifeline.InvalidArgumentError) as cm:
            lifeline.Server(dev_certs=CERTS.dir, listen="::1:0")  # IPv6 needs brackets
        self.assertIn("bad listen address", cm.exception.detail)
        with self.assertRaises(ValueError):
            lifeline.Server(dev_certs=CERTS.dir, cert_file=CERTS.server_cert)

    def test_exit_without_closing_is_clean(self):
        # Callbacks into Python from I/O threads must stop before the interpreter dies.
        script = (
            "import lifeline, sys\n"
            "srv = lifeline.Server(dev_certs=sys.argv[1], on_event=lambda e: None)\n"
            "c = lifeline.Client('127.0.0.1', srv.port, ca_file=srv.dev_certs.ca, on_event=lambda e: None)\n"
            "c.send(b'bye')\n"
            "srv.recv(timeout=10)\n"
        )
        env = dict(os.environ, LIFELINE_LIBRARY=lifeline.library_path,
                   PYTHONPATH=str(HERE.parent))
        proc = subprocess.run([sys.executable, "-c", script, CERTS.dir], env=env, capture_output=True,
                              text=True, timeout=WAIT * 3)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stderr, "")

    def test_dev_certs_files(self):
        for path in CERTS[1:]:
            self.assertTrue(os.path.isfile(path), path)


# ---------------------------------------------------------------------------------------


def server_binary() -> Path:
    bin_dir = os.environ.get("LIFELINE_BIN")
    base = Path(bin_dir) if bin_dir else Path(lifeline.library_path).resolve().parent.parent / "bin"
    return base / "lifeline-server"


class ServerProcess:
    """build/bin/lifeline-server as a child process, on a fixed port once it has one."""

    def __init__(self, port: int = 0):
        deadline = time.monotonic() + WAIT
        while True:
            self.proc = subprocess.Popen(
                [str(server_binary()), "--listen", f"127.0.0.1:{port}", "--dev-certs", CERTS.dir],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            self.port = self._read_port(deadline)
            if self.port:
                return
            self.proc.kill()
            self.proc.wait()
            # It exited at once: with a fixed port, most likely the port is not free yet.
            if port == 0 or time.monotonic() >= deadline:
                raise RuntimeError("lifeline-server did not start listening")
            time.sleep(0.05)

    def _read_port(self, deadline: float) -> int:
        fd, line = self.proc.stdout.fileno(), b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 256) if ready else b""
            if not chunk:
                return 0
            line += chunk
        text = line.decode()
        assert text.startswith("listening on "), text
        return int(text.rsplit(":", 1)[1])

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        return rc


@unittest.skipUnless(server_binary().exists(), "lifeline-server binary not found (set LIFELINE_BIN)")
class TestServerRestart(unittest.TestCase):
    TOTAL = 200

    def test_restart_mid_stream_is_invisible(self):
        server = ServerProcess()
        port = server.port
        self.addCleanup(lambda: server.proc.poll() is not None or server.stop())
        events = []
        got = []
        stopped, restarted = threading.Event(), threading.Event()
        stop_status = []
        client = connect(port, retry_on_first_connect=True, reconnect_min=0.05, reconnect_max=0.5,
                         on_event=events.append)
        self.addCleanup(client.__exit__, None, None, None)

        def receive():
            for m in client:
                got.append(int.from_bytes(m.data[:4], "little"))

        def restart():
            nonlocal server
            if not wait_for(lambda: len(got) >= 50):
                return
            stop_status.append(server.stop(signal.SIGTERM))
            stopped.set()
            time.sleep(0.2)
            server = ServerProcess(port)
            restarted.set()

        receiver = threading.Thread(target=receive, daemon=True)
        restarter = threading.Thread(target=restart, daemon=True)
        receiver.start()
        restarter.start()
        for i in range(1, self.TOTAL + 1):
            if i == self.TOTAL // 2 + 1:
                self.assertTrue(stopped.wait(WAIT), "the server was not stopped")
            client.send(i.to_bytes(4, "little") + bytes(60))
            time.sleep(0.005)
        self.assertTrue(restarted.wait(WAIT), "the server did not come back")
        self.assertEqual(stop_status, [0])  # SIGTERM is a graceful stop
        client.flush(timeout=WAIT)  # every message reached the new server's application
        self.assertTrue(wait_for(lambda: set(range(1, self.TOTAL + 1)) <= set(got)),
                        f"missing: {sorted(set(range(1, self.TOTAL + 1)) - set(got))[:10]}")
        time.sleep(0.2)  # late duplicates would show up now
        client.close()
        receiver.join(WAIT)

        rewinds = sum(1 for a, b in zip(got, got[1:]) if b <= a)
        self.assertLessEqual(rewinds, 1, "order went back more than once for one restart")
        st = client.stats()
        self.assertGreaterEqual(st["sessions_lost"], 1)
        self.assertGreaterEqual(st["reconnects"], 1)
        # The events tell the story through the binding: lost, back, new session.
        types = [e.type for e in events]
        self.assertIn("DISCONNECTED", types)
        self.assertIn("SESSION_LOST", types)
        self.assertEqual(types[-2:], ["CONNECTED", "CLOSED"])
        self.assertTrue(all(e.detail for e in events if e.type == "DISCONNECTED"))


if __name__ == "__main__":
    unittest.main()
