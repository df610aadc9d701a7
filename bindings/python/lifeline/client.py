"""lifeline.Client: the Python face of sdk_client (sdk.h)."""

from __future__ import annotations

import ctypes
import os
import warnings
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple, Union

from . import _native
from ._core import (
    SDK_ECLOSED,
    SDK_EQUEUEFULL,
    SDK_ETIMEDOUT,
    Endpoint,
    Handle,
    Inbox,
    Message,
    delivered,
    fill,
    open_handle,
    payload,
    receive,
    wait,
)
from ._native import lib, text
from ._settings import durations, seconds_to_ms
from .errors import CODES, ClosedError, Error, make_error


class Event(NamedTuple):
    """What on_event receives. `type`: "CONNECTING", "CONNECTED", "DISCONNECTED",
    "RECONNECTING", "SESSION_LOST" or "CLOSED"; `error`: an error name such as
    "SDK_ECONNREFUSED" ("SDK_OK" when there is none); `detail`: the readable cause;
    `attempt`: connection attempt number from 1; `delay`: RECONNECTING's wait before the
    next attempt, in seconds; `resumed`: CONNECTED continued the previous session."""

    type: str
    error: str
    detail: str
    attempt: int
    delay: float
    resumed: bool

    @property
    def delay_ms(self) -> int:
        """Deprecated: `delay` in milliseconds."""
        warnings.warn("Event.delay_ms is deprecated: use Event.delay (seconds)", DeprecationWarning, stacklevel=2)
        return round(self.delay * 1000)


def _event(ev: _native.sdk_event) -> Event:
    return Event(
        text(lib.sdk_event_name(ev.type)).upper(),
        text(lib.sdk_errname(ev.error)),
        text(ev.detail),
        int(ev.attempt),
        ev.delay_ms / 1000.0,
        bool(ev.resumed),
    )


#: One reconnect_policy rule: "stop", or (min, max) seconds (max None: reconnect_max).
RetryRule = Union[str, Tuple[float, Optional[float]]]


class Client(Endpoint):
    """A connection to a Lifeline server that survives network failures.

    Connects in the constructor (blocking up to connect_timeout, unless
    retry_on_first_connect). Keyword settings mirror sdk_config in sdk.h, durations in
    seconds (connect_timeout=2.5 is sdk_config.connect_timeout_ms = 2500; the old *_ms
    keywords still work, deprecated); None keeps the library default. Any number of threads
    may use one client at once.

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
        connect_timeout: Optional[float] = None,
        heartbeat_interval: Optional[float] = None,
        heartbeat_timeout: Optional[float] = None,
        reconnect_min: Optional[float] = None,
        reconnect_max: Optional[float] = None,
        max_reconnect_attempts: Optional[int] = None,
        retry_on_first_connect: bool = False,
        queue_max_messages: Optional[int] = None,
        queue_max_bytes: Optional[int] = None,
        window_messages: Optional[int] = None,
        window_bytes: Optional[int] = None,
        close_linger: Optional[float] = None,
        reconnect_policy: Optional[Dict[str, RetryRule]] = None,
        on_event: Optional[Callable[[Event], Any]] = None,
        on_message: Optional[Callable[[Message], Any]] = None,
        **deprecated_ms: Any,
    ):
        self._handle: Optional[Handle] = None
        self._closed_by_user = False
        self._inbox = Inbox()
        ms = durations({
            "connect_timeout": connect_timeout, "heartbeat_interval": heartbeat_interval,
            "heartbeat_timeout": heartbeat_timeout, "reconnect_min": reconnect_min,
            "reconnect_max": reconnect_max, "close_linger": close_linger,
        }, deprecated_ms, "Client")
        cfg = _native.sdk_config()
        _native.init_config(cfg)
        fill(cfg, {
            "host": host, "port": port, "address": address, "ca_file": ca_file, "servername": servername,
            "cert_file": cert_file, "key_file": key_file, "max_frame": max_frame,
            "max_reconnect_attempts": max_reconnect_attempts, "retry_on_first_connect": retry_on_first_connect,
            "queue_max_messages": queue_max_messages, "queue_max_bytes": queue_max_bytes,
            "window_messages": window_messages, "window_bytes": window_bytes, **ms,
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
            rc = wait(lambda ms: int(lib.sdk_send_seq(ptr, tname, body, len(body), ms, ctypes.byref(seq))), timeout,
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
        return delivered(msg, expect)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Wait until every message sent so far is acknowledged by the server's application.
        Raises TimeoutError or ClosedError. On the main thread the wait is sliced for Ctrl-C;
        each slice then also waits for messages other threads sent meanwhile."""
        with self._call() as ptr:
            rc = wait(lambda ms: int(lib.sdk_flush(ptr, ms)), timeout, SDK_ETIMEDOUT)
        self._check(rc)

    def flush_to(self, seq: int, timeout: Optional[float] = None) -> None:
        """sdk_flush_to: wait until the message send() numbered seq, and every one before it,
        is acknowledged by the server's application. Raises TimeoutError (with the reason
        the client cannot connect, if it cannot), ClosedError, InvalidArgumentError (seq
        not queued yet)."""
        with self._call() as ptr:
            rc = wait(lambda ms: int(lib.sdk_flush_to(ptr, seq, ms)), timeout, SDK_ETIMEDOUT)
        self._check(rc)

    def fileno(self) -> int:
        """sdk_fd: a descriptor that turns readable whenever a waiting call could now
        complete (message, acknowledgement, state change, close), for select, selectors or
        an event loop (lifeline.aio uses it). Try a call with timeout=0 first, wait for the
        descriptor only while it says "not yet", and read 8 bytes from it to reset it
        (sdk.h, sdk_fd). Owned by the client: do not close it."""
        fd = ctypes.c_int(-1)
        with self._call() as ptr:
            rc = int(lib.sdk_fd(ptr, ctypes.byref(fd)))
        self._check(rc)
        return fd.value

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


def _set_policy(cfg: _native.sdk_config, policy: Dict[str, RetryRule]) -> None:
    """reconnect_policy={"certificate": "stop", "refused": (min, max), ...}: per cause
    (_native.RETRY_CAUSES), "stop" or a (min, max) pair of seconds (max None: reconnect_max).
    Causes not named keep the defaults (sdk.h, sdk_config.reconnect_policy)."""
    for cause, rule in policy.items():
        if cause not in _native.RETRY_CAUSES:
            raise make_error(CODES["SDK_EINVAL"], f"reconnect_policy: unknown cause {cause!r}; "
                             f"one of {', '.join(_native.RETRY_CAUSES)}")
        slot = cfg.reconnect_policy[_native.RETRY_CAUSES.index(cause)]
        if rule == "stop":
            slot.stop, slot.min_ms, slot.max_ms = True, 0, -1
        elif isinstance(rule, tuple) and len(rule) == 2:
            lo, hi = rule
            slot.stop = False
            slot.min_ms = seconds_to_ms(f"reconnect_policy[{cause!r}] min", lo)
            slot.max_ms = -1 if hi is None else seconds_to_ms(f"reconnect_policy[{cause!r}] max", hi)
        else:
            raise TypeError(f"reconnect_policy[{cause!r}] must be \"stop\" or (min, max) seconds, not {rule!r}")
