"""What Client and Server share: messages, timeouts, config filling, handle lifetime."""

from __future__ import annotations

import atexit
import collections
import ctypes
import logging
import math
import os
import threading
import time
import weakref
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

from . import _native
from ._native import lib, text
from .errors import CODES, ClosedError, ProtocolError, TypeMismatchError, make_error

log = logging.getLogger("lifeline")

SDK_OK = CODES["SDK_OK"]
SDK_ETIMEDOUT = CODES["SDK_ETIMEDOUT"]
SDK_ECLOSED = CODES["SDK_ECLOSED"]
SDK_EQUEUEFULL = CODES["SDK_EQUEUEFULL"]
SDK_ETYPE = CODES["SDK_ETYPE"]
SDK_EPROTO = CODES["SDK_EPROTO"]

# Longest single wait on the main thread, so that Ctrl-C (delivered to the main thread
# between foreign calls) is seen within this long.
SLICE_MS = 200
_INT_MAX = 2**31 - 1


# ---- messages ----

class Message:
    """A received message: payload `data` (bytes), protobuf `type` name or None, `seq`
    within the session, `session` (server side; 0 on the client), `peer` (server side:
    the client certificate subject under mutual TLS, else None) and `flags` (SDK_MSG_* bits:
    REDELIVERED = 0x1, see .redelivered)."""

    __slots__ = ("data", "type", "seq", "session", "peer", "flags")

    def __init__(self, data: bytes, type: Optional[str] = None, seq: int = 0, session: int = 0,
                 peer: Optional[str] = None, flags: int = 0):
        self.data = data
        self.type = type
        self.seq = seq
        self.session = session
        self.peer = peer
        self.flags = flags

    REDELIVERED = 0x1

    @property
    def redelivered(self) -> bool:
        """Server side: a previous owner of the session, which died, may have delivered this
        message already (a store with store_sync="always"); no other message has it."""
        return bool(self.flags & Message.REDELIVERED)

    def __bytes__(self) -> bytes:
        return self.data

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return (f"Message(data={self.data[:32]!r}{'...' if len(self.data) > 32 else ''}, "
                f"type={self.type!r}, seq={self.seq}, session={self.session}, peer={self.peer!r})")

    def parse(self, cls: Any) -> Any:
        """The payload as an instance of the protobuf class `cls`. Raises TypeMismatchError
        if the sender labelled it with another type name (or none), ProtocolError if it
        does not parse; both carry this message as `.message`."""
        want = cls.DESCRIPTOR.full_name
        if self.type != want:
            raise TypeMismatchError(SDK_ETYPE, None, f"expected {want}, got {self.type or 'an untyped message'}",
                                    self)
        obj = cls()
        try:
            obj.ParseFromString(self.data)
        except Exception as exc:  # google.protobuf.message.DecodeError, without importing protobuf
            raise ProtocolError(SDK_EPROTO, None, f"payload does not parse as {want}: {exc}", self) from exc
        return obj


def take_message(out: Any) -> Message:
    """Copy a received sdk_message into Python and free it."""
    m = out.contents
    try:
        data = ctypes.string_at(m.data, m.len) if m.len else b""
        return Message(data, text(m.type) if m.type else None, m.seq, m.session,
                       text(m.peer) if m.peer else None, m.flags)
    finally:
        lib.sdk_message_free(out)


def payload(data: Any, type_name: Optional[str]) -> Tuple[Optional[bytes], bytes]:
    """(type name or None, bytes) for what send() was given: bytes-like, or a protobuf message."""
    if isinstance(data, bytes):
        body = data
    elif isinstance(data, (bytearray, memoryview)):
        body = bytes(data)
    elif hasattr(data, "SerializeToString") and hasattr(data, "DESCRIPTOR"):
        if type_name is None:
            type_name = data.DESCRIPTOR.full_name
        body = data.SerializeToString()
    elif isinstance(data, str):
        raise TypeError("send() takes bytes or a protobuf message, not str: encode it first")
    else:
        raise TypeError(f"send() takes bytes or a protobuf message, not {type(data).__name__}")
    return (type_name.encode() if type_name else None), body


# ---- timeouts ----

def _to_ms(timeout: Optional[float]) -> Optional[int]:
    """Seconds to whole milliseconds, rounded up (a short timeout never becomes 'do not wait')."""
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError("timeout must be None (no limit) or >= 0 seconds")
    return min(_INT_MAX, math.ceil(timeout * 1000))


def wait(call: Callable[[int], int], timeout: Optional[float], retry_rc: int) -> int:
    """Run call(timeout_ms) as one wait of `timeout` seconds (None: no limit).

    On the main thread the wait is cut into SLICE_MS pieces so that Ctrl-C is noticed:
    call is repeated while it answers retry_rc (what it says when its own slice ran out)
    and time remains. Other threads never see KeyboardInterrupt; they wait in one call.
    Returns call's last answer.
    """
    total = _to_ms(timeout)
    if total == 0:
        return call(0)
    sliced = threading.current_thread() is threading.main_thread()
    deadline = None if total is None else time.monotonic() + total / 1000.0
    while True:
        if deadline is None:
            ms = SLICE_MS if sliced else -1
        else:
            left = max(1, math.ceil((deadline - time.monotonic()) * 1000))
            ms = min(left, SLICE_MS) if sliced else min(left, _INT_MAX)
        rc = call(ms)
        if rc != retry_rc or ms < 0:
            return rc
        if deadline is not None and time.monotonic() >= deadline:
            return rc


# ---- config ----

def _bounds(ctype: Any) -> Tuple[int, int]:
    bits = 8 * ctypes.sizeof(ctype)
    signed = ctype(-1).value == -1
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def fill(cfg: ctypes.Structure, values: Dict[str, Any]) -> None:
    """Set the fields of a config struct from keyword values; None keeps the library default.
    Checks ranges, since ctypes would silently truncate an out-of-range int."""
    types = dict(cfg._fields_)
    for name, value in values.items():
        if value is None:
            continue
        ctype = types[name]
        if ctype is ctypes.c_char_p:
            if not isinstance(value, (str, bytes, os.PathLike)):
                raise TypeError(f"{name} must be a str or path, not {type(value).__name__}")
            value = os.fsencode(value)
            if b"\0" in value:
                raise ValueError(f"{name} contains a NUL byte")
        elif ctype is ctypes.c_bool:
            value = bool(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            lo, hi = _bounds(ctype)
            if not lo <= value <= hi:
                raise ValueError(f"{name}={value} is out of range [{lo}, {hi}]")
        setattr(cfg, name, value)


# ---- event callbacks ----

_tls = threading.local()


def in_callback() -> bool:
    """True on a library I/O thread while it runs one of our event callbacks."""
    return getattr(_tls, "in_callback", False)


def make_thunk(fn_type: Any, user_fn: Callable[[Any], None], convert: Callable[[Any], Any], name: str) -> Any:
    """A C callback that converts its argument and calls user_fn, never letting an exception
    reach C. It runs on the library's I/O thread, which ctypes gives the GIL for the call."""

    def trampoline(arg: Any, _user: Any) -> None:
        _tls.in_callback = True
        try:
            user_fn(convert(arg))
        except BaseException:  # noqa: BLE001 - nothing may propagate into C
            try:
                log.exception("lifeline: %s callback raised; ignored", name)
            except BaseException:  # noqa: BLE001 - e.g. logging torn down at exit
                pass
        finally:
            _tls.in_callback = False

    return fn_type(trampoline)


def _message_at(ptr: int) -> Message:
    return take_message(ctypes.cast(ptr, ctypes.POINTER(_native.sdk_message)))


def _install(cfg: Any, field: str, user_fn: Optional[Callable[[Any], None]], fn_type: Any,
             convert: Callable[[Any], Any]) -> Any:
    """Set cfg.<field> to a thunk calling user_fn (None: leave it unset); returns the thunk."""
    if user_fn is None:
        return None
    if not callable(user_fn):
        raise TypeError(f"{field} must be callable")
    thunk = make_thunk(fn_type, user_fn, convert, field)
    setattr(cfg, field, thunk)
    return thunk


def open_handle(start: Any, cfg: Any, on_event: Optional[Callable[[Any], None]], fn_type: Any,
                convert: Callable[[Any], Any], close: Any, destroy: Any, what: str,
                on_message: Optional[Callable[[Message], None]] = None) -> "Handle":
    """Install on_event and on_message (if any) in cfg, call start(&cfg, &out) (sdk_connect
    or sdk_server_start) and wrap the result; a failure raises with the library's detail,
    read on this thread (sdk_last_connect_error, or sdk_server_last_start_error for a server)."""
    thunks = (_install(cfg, "on_event", on_event, fn_type, lambda p: convert(p.contents)),
              _install(cfg, "on_message", on_message, _native.sdk_message_fn, _message_at))
    out = ctypes.c_void_p()
    rc = start(ctypes.byref(cfg), ctypes.byref(out))
    if rc != 0:
        detail = _native.last_start_error() if what == "server" else _native.last_connect_error()
        raise make_error(rc, detail)
    if out.value is None:  # SDK_OK always comes with a handle (sdk.h, server.h)
        raise RuntimeError(f"lifeline: the {what} started without a handle")
    return Handle(out.value, close, destroy, what, thunks if any(thunks) else None)


# ---- handle lifetime ----

_live: "weakref.WeakSet[Handle]" = weakref.WeakSet()


class Handle:
    """Owns one C handle (sdk_client * or sdk_server *).

    Every call on the handle runs inside `with handle.call() as ptr:`, which counts it in
    flight. release() closes the handle (waking blocked callers with SDK_ECLOSED), refuses
    new calls, and frees the handle once the last call in flight has left: whoever leaves
    last frees it, so it is never freed under a thread still inside the library.
    """

    def __init__(self, ptr: int, close_fn: Callable[[int], Any], destroy_fn: Callable[[int], None],
                 what: str, keepalive: Any = None):
        self._ptr: Optional[int] = ptr
        self._close_fn = close_fn
        self._destroy_fn = destroy_fn
        self._what = what
        self._keepalive = keepalive  # the C callback object: must outlive the C handle
        self._lock = threading.Lock()
        self._inflight = 0
        self._released = False
        if keepalive is not None:
            _live.add(self)

    @property
    def released(self) -> bool:
        return self._released

    @property
    def freed(self) -> bool:
        return self._ptr is None

    def _enter(self) -> int:
        with self._lock:
            if self._released:
                raise ClosedError(SDK_ECLOSED, None, f"the {self._what} was released")
            self._inflight += 1
            return self._ptr  # type: ignore[return-value]

    def _leave(self) -> None:
        with self._lock:
            self._inflight -= 1
            ptr = self._ptr if (self._released and self._inflight == 0) else None
            if ptr is not None:
                self._ptr = None
        if ptr is not None:
            self._destroy_fn(ptr)
            self._keepalive = None

    def call(self) -> "_Call":
        return _Call(self)

    def close(self) -> None:
        """The C close (handle stays valid). Not from an event callback: it joins that thread."""
        if in_callback():
            # It would join the I/O thread it may be running on (sdk.h, server.h).
            raise RuntimeError(f"lifeline: a {self._what} may not be closed from an on_event callback")
        try:
            ptr = self._enter()
        except ClosedError:
            return  # released: closed already
        try:
            self._close_fn(ptr)
        finally:
            self._leave()

    def release(self) -> None:
        """Close, then free once no call is in flight. Idempotent; any thread."""
        if in_callback():
            # On the I/O thread (e.g. garbage collection inside a callback): closing here
            # would join this very thread, so leave it to another one.
            threading.Thread(target=self.release, name="lifeline-release", daemon=True).start()
            return
        with self._lock:
            if self._released:
                return
            self._released = True
            self._inflight += 1  # this release is a call too, until the close returns
            ptr = self._ptr
        try:
            if ptr is not None:
                self._close_fn(ptr)
        finally:
            self._leave()


class _Call:
    __slots__ = ("_h",)

    def __init__(self, h: Handle):
        self._h = h

    def __enter__(self) -> int:
        return self._h._enter()

    def __exit__(self, *exc: Any) -> None:
        self._h._leave()


@atexit.register
def _release_all() -> None:
    # Handles with a Python callback are closed before the interpreter finalizes, so that
    # their I/O threads never call into a dying interpreter.
    for h in list(_live):
        try:
            h.release()
        except Exception:  # noqa: BLE001
            pass


class Inbox:
    """Messages a recv took from the library but could not hand back, because an exception
    (Ctrl-C) arrived right after the foreign call: the next recv returns them first."""

    def __init__(self) -> None:
        self._q: Deque[Message] = collections.deque()

    def pop(self) -> Optional[Message]:
        try:
            return self._q.popleft()
        except IndexError:
            return None

    def keep(self, msgs: List[Message]) -> None:
        self._q.extend(msgs)


def receive(handle: Handle, inbox: Inbox, recv_fn: Any, timeout: Optional[float]) -> Tuple[int, Optional[Message]]:
    """One recv as the caller sees it: (sdk_err, Message or None)."""
    early = inbox.pop()
    if early is not None:
        return SDK_OK, early
    box: List[Message] = []
    try:
        with handle.call() as ptr:

            def once(ms: int) -> int:
                out = ctypes.POINTER(_native.sdk_message)()
                try:
                    return int(recv_fn(ptr, ctypes.byref(out), ms))
                finally:
                    if out:  # taken from the library: from here on it must not be lost
                        box.append(take_message(out))

            rc = wait(once, timeout, SDK_ETIMEDOUT)
    except BaseException:
        inbox.keep(box)
        raise
    return rc, (box[0] if box else None)


def delivered(msg: Optional[Message], expect: Any) -> Any:
    """What recv() returns once receive() answered SDK_OK: the message, or it parsed as expect."""
    if msg is None:  # SDK_OK always comes with a message (sdk_recv, sdk_server_recv)
        raise RuntimeError("lifeline: a receive succeeded without a message")
    return msg.parse(expect) if expect is not None else msg


class Endpoint:
    """What Client and Server share around their Handle: `with` releases it, garbage
    collection too, and iterating yields recv() until closed. Subclasses set _handle and
    _never_opened (the ClosedError detail when there is no handle) and define recv()."""

    _handle: Optional[Handle] = None
    _never_opened = "never opened"

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.release()

    def __del__(self) -> None:
        h = getattr(self, "_handle", None)
        if h is not None:
            h.release()

    def __iter__(self) -> Iterator[Message]:
        """Every received message, until closed (stopped)."""
        while True:
            try:
                yield self.recv()  # type: ignore[attr-defined]
            except ClosedError:
                return

    def _handle_or_raise(self) -> Handle:
        if self._handle is None:
            raise ClosedError(SDK_ECLOSED, None, self._never_opened)
        return self._handle

    def _call(self) -> Any:
        return self._handle_or_raise().call()
