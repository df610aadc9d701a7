"""lifeline.Client: the Python face of sdk_client (sdk.h)."""

from __future__ import annotations

import ctypes
import os
from collections import namedtuple
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from . import _native
from ._core import (
    SDK_ECLOSED,
    SDK_EQUEUEFULL,
    SDK_ETIMEDOUT,
    Endpoint,
    Handle,
    Inbox,
    Message,
    fill,
    open_handle,
    payload,
    receive,
    wait,
)
from ._native import lib, text
from .errors import CODES, ClosedError, Error, make_error

#: What on_event receives. `type`: "CONNECTING", "CONNECTED", "DISCONNECTED",
#: "RECONNECTING", "SESSION_LOST" or "CLOSED"; `error`: an error name such as
#: "SDK_ECONNREFUSED" ("SDK_OK" when there is none); `detail`: the readable cause;
#: `attempt`: connection attempt number from 1; `delay_ms`: RECONNECTING's wait before the
#: next attempt; `resumed`: CONNECTED continued the previous session.
Event = namedtuple("Event", "type error detail attempt delay_ms resumed")


def _event(ev: _native.sdk_event) -> Event:
    return Event(
        text(lib.sdk_event_name(ev.type)).upper(),
        text(lib.sdk_errname(ev.error)),
        text(ev.detail),
        ev.attempt,
        ev.delay_ms,
        bool(ev.resumed),
    )


class Client(Endpoint):
    """A connection to a Lifeline server that survives network failures.

    Connects in the constructor (blocking up to connect_timeout_ms, unless
    retry_on_first_connect). Keyword settings mirror sdk_config in sdk.h; None keeps the
    library default. Any number of threads may use one client at once.

    Use it as a context manager, or call close(); the C handle is freed when the object
    is garbage collected or on leaving the `with` block, and never while another thread
    is still inside a call (close() wakes those with ClosedError first).

    on_event(Event) runs on the library's I/O thread: it must return quickly, must not
    call close(), and its exceptions are logged (logger "lifeline") and dropped.

    on_message(Message), if given, takes every message on the I/O thread as it arrives
    instead of recv() (which then raises InvalidArgumentError): see sdk_message_fn in sdk.h.
    Same rules as on_event; send() from it never waits for room, flush() raises.
    """

    _never_opened = "the client never connected"

    def __init__(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        *,
        address: Optional[str] = None,
        endpoints: Optional[Sequence[str]] = None,
        keep_endpoint_order: bool = False,
        ca_file: Optional[str] = None,
        servername: Optional[str] = None,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
        max_frame: Optional[int] = None,
        connect_timeout_ms: Optional[int] = None,
        heartbeat_interval_ms: Optional[int] = None,
        heartbeat_timeout_ms: Optional[int] = None,
        reconnect_min_ms: Optional[int] = None,
        reconnect_max_ms: Optional[int] = None,
        max_reconnect_attempts: Optional[int] = None,
        retry_on_first_connect: bool = False,
        queue_max_messages: Optional[int] = None,
        queue_max_bytes: Optional[int] = None,
        window_messages: Optional[int] = None,
        window_bytes: Optional[int] = None,
        close_linger_ms: Optional[int] = None,
        reconnect_policy: Optional[Dict[str, Any]] = None,
        on_event: Optional[Callable[[Event], Any]] = None,
        on_message: Optional[Callable[[Message], Any]] = None,
    ):
        self._handle: Optional[Handle] = None
        self._closed_by_user = False
        self._inbox = Inbox()
        cfg = _native.sdk_config()
        _native.init_config(cfg)
        fill(cfg, {
            "host": host, "port": port, "address": address, "ca_file": ca_file, "servername": servername,
            "cert_file": cert_file, "key_file": key_file, "max_frame": max_frame,
            "connect_timeout_ms": connect_timeout_ms, "heartbeat_interval_ms": heartbeat_interval_ms,
            "heartbeat_timeout_ms": heartbeat_timeout_ms, "reconnect_min_ms": reconnect_min_ms,
            "reconnect_max_ms": reconnect_max_ms, "max_reconnect_attempts": max_reconnect_attempts,
            "retry_on_first_connect": retry_on_first_connect,
            "queue_max_messages": queue_max_messages, "queue_max_bytes": queue_max_bytes,
            "window_messages": window_messages, "window_bytes": window_bytes,
            "close_linger_ms": close_linger_ms,
        })
        _set_policy(cfg, reconnect_policy or {})
        keep = _set_endpoints(cfg, endpoints, keep_endpoint_order)  # alive until sdk_connect copied it
        self._handle = open_handle(lib.sdk_connect, cfg, on_event, _native.sdk_event_fn, _event,
                                   lib.sdk_close, lib.sdk_destroy, "client", on_message)
        del keep

    # ---- lifetime ----

    def close(self) -> None:
        """sdk_close: flush for close_linger_ms, send a close frame, stop the I/O thread and
        wake blocked callers (recv first drains what already arrived). stats(), state and
        last_error() keep working; other calls raise ClosedError. Idempotent."""
        self._closed_by_user = True
        if self._handle is not None:
            self._handle.close()

    def __exit__(self, *exc: Any) -> None:
        self._closed_by_user = True
        super().__exit__(*exc)

    # ---- messages ----

    def send(self, data: Any, timeout: Optional[float] = None, *, type_name: Optional[str] = None) -> int:
        """sdk_send_seq: queue a message: bytes-like, or a protobuf message (sent with its full
        type name). Returns its client sequence (n for the n-th message this client ever
        queued; it survives reconnects and session loss: see flush_to) once queued, not
        delivered. While the queue is full waits up to timeout seconds (None: no limit),
        then raises QueueFullError. type_name labels raw bytes with a type. Raises
        TooBigError, ClosedError, ..."""
        tname, body = payload(data, type_name)
        seq = ctypes.c_uint64(0)
        with self._call() as ptr:
            rc = wait(lambda ms: lib.sdk_send_seq(ptr, tname, body, len(body), ms, ctypes.byref(seq)), timeout,
                      SDK_EQUEUEFULL)
        self._check(rc)
        return seq.value

    def recv(self, timeout: Optional[float] = None, expect: Any = None) -> Any:
        """The next message from the server, waiting up to timeout seconds (None: no limit).
        With expect=ProtobufClass, returns the parsed message; a message of another type
        raises TypeMismatchError with the Message as its .message (it is not lost).
        Raises TimeoutError, or ClosedError once closed and drained."""
        rc, msg = receive(self._handle_or_raise(), self._inbox, lib.sdk_recv, timeout)
        self._check(rc)
        return msg.parse(expect) if expect is not None else msg

    def flush(self, timeout: Optional[float] = None) -> None:
        """Wait until every message sent so far is acknowledged by the server's application.
        Raises TimeoutError or ClosedError. On the main thread the wait is sliced for Ctrl-C;
        each slice then also waits for messages other threads sent meanwhile."""
        with self._call() as ptr:
            rc = wait(lambda ms: lib.sdk_flush(ptr, ms), timeout, SDK_ETIMEDOUT)
        self._check(rc)

    def flush_to(self, seq: int, timeout: Optional[float] = None) -> None:
        """sdk_flush_to: wait until the message send() numbered seq, and every one before it,
        is acknowledged by the server's application. Raises TimeoutError (with the reason
        the client cannot connect, if it cannot), ClosedError, InvalidArgumentError (seq
        not queued yet)."""
        with self._call() as ptr:
            rc = wait(lambda ms: lib.sdk_flush_to(ptr, seq, ms), timeout, SDK_ETIMEDOUT)
        self._check(rc)

    # ---- introspection ----

    @property
    def state(self) -> str:
        """"connecting", "connected", "reconnecting" or "closed"."""
        try:
            with self._call() as ptr:
                return text(lib.sdk_state_name(lib.sdk_get_state(ptr)))
        except ClosedError:  # released, or never connected
            return "closed"

    def stats(self) -> Dict[str, Any]:
        """Every sdk_stats counter by its C name; "state" as a name. Works after close()."""
        st = _native.sdk_stats()
        with self._call() as ptr:
            rc = lib.sdk_get_stats(ptr, ctypes.byref(st))
        self._check(rc)
        out: Dict[str, Any] = {name: getattr(st, name) for name, _ in st._fields_}
        out["state"] = text(lib.sdk_state_name(st.state))
        return out

    @property
    def endpoint(self) -> Tuple[int, str]:
        """sdk_current_endpoint: (index into endpoints as given, "IP:PORT") of the endpoint in
        use or, while not connected, being tried; index 0 with host/port or address; the
        address is "" before its name was resolved. Works after close()."""
        index = ctypes.c_size_t(0)
        buf = ctypes.create_string_buffer(64)
        with self._call() as ptr:
            rc = lib.sdk_current_endpoint(ptr, ctypes.byref(index), buf, len(buf))
        self._check(rc)
        return index.value, text(buf.value)

    def last_error(self) -> Tuple[str, str]:
        """(error name, detail) of the most recent connection failure; ("SDK_OK", "") if none."""
        buf = ctypes.create_string_buffer(_native.DETAIL_LEN)
        with self._call() as ptr:
            rc = lib.sdk_last_error(ptr, buf, _native.DETAIL_LEN)
        return text(lib.sdk_errname(rc)), text(buf.value)

    def __repr__(self) -> str:
        return f"<lifeline.Client {self.state}>"

    # ---- helpers ----

    def _check(self, rc: int) -> None:
        if rc == 0:
            return
        detail = ""
        if rc == CODES["SDK_ETOOBIG"]:
            detail = _native.last_call_error()  # size, limit and whose (this thread's call)
        elif rc == SDK_ETIMEDOUT and self.state != "connected":
            # A wait that timed out because the client cannot connect: say why.
            name, why = self.last_error()
            if name != "SDK_OK":
                detail = f"not connected: {name}: {why}"
        elif rc == SDK_ECLOSED and not self._closed_by_user:
            # Closed by the library (gave up reconnecting, rejected): say why, and raise
            # RejectedError (a ClosedError) when the server asked us not to come back.
            try:
                name, detail = self.last_error()
                if name == "SDK_EREJECTED":
                    rc = CODES["SDK_EREJECTED"]
            except Error:
                pass
        raise make_error(rc, detail)


def _set_endpoints(cfg: _native.sdk_config, endpoints: Optional[Sequence[str]], keep_order: bool) -> Any:
    """endpoints=["HOST:PORT", ...] into cfg (sdk_config.endpoints: 1 to 64 of them, instead
    of host/port or address; sdk_connect checks each). Returns the ctypes array, which must
    stay alive until sdk_connect has copied it."""
    cfg.keep_endpoint_order = bool(keep_order)
    if endpoints is None:
        return None
    if isinstance(endpoints, (str, bytes)):
        raise TypeError("endpoints must be a list of \"HOST:PORT\" strings, not one string")
    items = []
    for e in endpoints:
        if not isinstance(e, (str, bytes)):
            raise TypeError(f"endpoints entries must be str, not {type(e).__name__}")
        b = os.fsencode(e)
        if b"\0" in b:
            raise ValueError("an endpoints entry contains a NUL byte")
        items.append(b)
    array = (ctypes.c_char_p * max(len(items), 1))(*items)
    cfg.endpoints = ctypes.cast(array, ctypes.POINTER(ctypes.c_char_p))  # [] too: the library says why
    cfg.endpoint_count = len(items)
    return array


def _set_policy(cfg: _native.sdk_config, policy: Dict[str, Any]) -> None:
    """reconnect_policy={"certificate": "stop", "refused": (min_ms, max_ms), ...}: per cause
    (_native.RETRY_CAUSES), "stop" or a (min_ms, max_ms) pair (max_ms -1: reconnect_max_ms).
    Causes not named keep the defaults (sdk.h, sdk_config.reconnect_policy)."""
    for cause, rule in policy.items():
        if cause not in _native.RETRY_CAUSES:
            raise make_error(CODES["SDK_EINVAL"], f"reconnect_policy: unknown cause {cause!r}; "
                             f"one of {', '.join(_native.RETRY_CAUSES)}")
        slot = cfg.reconnect_policy[_native.RETRY_CAUSES.index(cause)]
        if rule == "stop":
            slot.stop, slot.min_ms, slot.max_ms = True, 0, -1
        else:
            lo, hi = rule
            slot.stop, slot.min_ms, slot.max_ms = False, int(lo), int(hi)
