"""lifeline.Server (sdk_server, server.h) and lifeline.dev_certs."""

from __future__ import annotations

import ctypes
import os
from collections import namedtuple
from typing import Any, Callable, Dict, List, Optional

from . import _native
from ._core import (
    SDK_EQUEUEFULL,
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
from ._settings import durations
from .errors import CODES, check

#: What Server(on_event=...) receives. `type`: "OPENED", "RESUMED", "DETACHED", "EXPIRED"
#: or "CLOSED"; `cause`: sdk_cause_name ("none", "reset", "clean_close", ...);
#: `peer_addr`: "ip:port" of the connection.
SessionEvent = namedtuple("SessionEvent", "type session cause peer_addr")

#: Paths of the files sdk_dev_certs keeps in its directory.
DevCerts = namedtuple("DevCerts", "dir ca ca_key server_cert server_key client_cert client_key")


def dev_certs(directory: "str | os.PathLike[str]") -> DevCerts:
    """sdk_dev_certs: create (if absent) a throwaway CA, a server certificate for localhost,
    127.0.0.1 and ::1, and a client certificate in `directory`. For development and tests
    only. Raises IOFailureError or TLSError with the library's detail."""
    d = os.fspath(directory)
    err = ctypes.create_string_buffer(_native.DETAIL_LEN)
    check(lib.sdk_dev_certs(os.fsencode(d), err, _native.DETAIL_LEN), text(err.value))

    def j(name: str) -> str:
        return os.path.join(d, name)

    return DevCerts(d, j("ca.pem"), j("ca.key"), j("server.pem"), j("server.key"), j("client.pem"), j("client.key"))


_make_dev_certs = dev_certs  # Server's dev_certs keyword shadows the name


def _session_event(ev: _native.sdk_session_event) -> SessionEvent:
    return SessionEvent(
        text(lib.sdk_session_event_name(ev.type)).upper(),
        ev.session,
        text(lib.sdk_cause_name(ev.cause)),
        text(ev.peer_addr),
    )


def _session_dict(info: _native.sdk_session_info) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, _ in info._fields_:
        value = getattr(info, name)
        out[name] = text(value) if isinstance(value, bytes) else value
    out["state"] = text(lib.sdk_session_state_name(info.state))
    out["last_cause"] = text(lib.sdk_cause_name(info.last_cause))
    return out


def _open_store(url: Optional[str], timeout_ms: int) -> Optional[int]:
    """sdk_store_open(url) ("memory:" or "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"), or None for no store."""
    if url is None:
        return None
    st = ctypes.c_void_p()
    rc = lib.sdk_store_open(os.fsencode(url), timeout_ms, ctypes.byref(st))
    check(rc, _native.last_connect_error())
    return st.value


def _destroy_with(store: Optional[int]) -> Callable[[int], None]:
    """sdk_server_destroy, then closing the server's store: it must outlive the server."""
    def destroy(ptr: int) -> None:
        lib.sdk_server_destroy(ptr)
        lib.sdk_store_close(store)
    return destroy


_STORE_SYNC = ("handover", "always")  # sdk_store_sync, in order


class Server(Endpoint):
    """An embedded Lifeline server (server.h): listens, serves every client on one I/O
    thread, and hands their messages to recv(). Any number of threads may use it at once.

    Certificates: cert_file and key_file, or dev_certs=DIR to create throwaway ones there
    (sdk_dev_certs) and use DIR/server.pem and DIR/server.key; the DevCerts paths are then
    in .dev_certs (clients trust .dev_certs.ca). Other keywords mirror sdk_server_config,
    durations in seconds (session_ttl=60 is session_ttl_ms = 60000; the old *_ms keywords
    still work, deprecated); None keeps the library default.

    store="redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]" (or "memory:") keeps sessions in a session store
    (lifeline/store.h), and any server on the same store resumes them. store_sync says when
    they are written: "handover" (the default: when a connection drops and at stop()) or
    "always" (also before any ack, data or delivery leaves, so a killed server loses
    nothing; messages its application may have seen come again with .redelivered).
    store_timeout (seconds) bounds each store call (None: the library default). The store is opened
    here and closed with the server. takeover_timeout (seconds, default 0.5, at most 10) is how
    long a resume of a session another live server holds waits for that server to let it go
    (docs/cluster.md, "Takeover").

    manual_ack=True: taking a message does not acknowledge it; ack(msg) or reply(msg, ...)
    does, once the application is done with it.

    With a store, the TLS ticket keys are shared through it too: ticket_key_rotation
    (seconds, default 12 h) and ticket_keys_live (default 3) as in sdk_server_config.

    lame_duck (seconds, at most 600; default 0): stop() tells the clients GOING_AWAY one by
    one over that window instead of all at once, serving the others meanwhile
    (sdk_server_config.lame_duck_ms).

    io_threads (default 1; 0: one per online CPU, at most 8): I/O threads sharing the
    connections, their TLS handshakes and records (sdk_server_config.io_threads). Callbacks
    still run on one thread, one at a time.

    on_event(SessionEvent) runs on the server's I/O thread: return quickly, do not call
    stop() or block; exceptions are logged (logger "lifeline") and dropped.

    on_message(Message), if given, takes every message on the I/O thread as it arrives
    instead of recv() (which then raises InvalidArgumentError): see sdk_message_fn in sdk.h.
    Same rules as on_event; send() from it never waits for room.
    """

    _never_opened = "the server never started"

    def __init__(
        self,
        listen: str = "127.0.0.1:0",
        *,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
        client_ca_file: Optional[str] = None,
        dev_certs: Optional[str] = None,
        max_frame: Optional[int] = None,
        handshake_timeout: Optional[float] = None,
        heartbeat_min: Optional[float] = None,
        heartbeat_max: Optional[float] = None,
        session_ttl: Optional[float] = None,
        queue_max_messages: Optional[int] = None,
        queue_max_bytes: Optional[int] = None,
        window_messages: Optional[int] = None,
        window_bytes: Optional[int] = None,
        max_output_bytes: Optional[int] = None,
        on_event: Optional[Callable[[SessionEvent], Any]] = None,
        on_message: Optional[Callable[[Message], Any]] = None,
        store: Optional[str] = None,
        store_timeout: Optional[float] = None,
        store_sync: str = "handover",
        manual_ack: bool = False,
        ticket_key_rotation: Optional[float] = None,
        ticket_keys_live: Optional[int] = None,
        lame_duck: Optional[float] = None,
        takeover_timeout: Optional[float] = None,
        io_threads: Optional[int] = None,
        **deprecated_ms: Any,
    ):
        self._handle: Optional[Handle] = None
        self._inbox = Inbox()
        self.dev_certs: Optional[DevCerts] = None
        if dev_certs is not None:
            if cert_file is not None or key_file is not None:
                raise ValueError("give dev_certs or cert_file/key_file, not both")
            self.dev_certs = _make_dev_certs(dev_certs)
            cert_file, key_file = self.dev_certs.server_cert, self.dev_certs.server_key
        ms = durations({
            "handshake_timeout": handshake_timeout, "heartbeat_min": heartbeat_min,
            "heartbeat_max": heartbeat_max, "session_ttl": session_ttl, "store_timeout": store_timeout,
            "ticket_key_rotation": ticket_key_rotation, "lame_duck": lame_duck,
            "takeover_timeout": takeover_timeout,
        }, deprecated_ms, "Server")
        store_timeout_ms = ms.pop("store_timeout_ms") or 0
        cfg = _native.sdk_server_config()
        _native.init_config(cfg)
        fill(cfg, {
            "listen": listen, "cert_file": cert_file, "key_file": key_file,
            "client_ca_file": client_ca_file, "max_frame": max_frame,
            "queue_max_messages": queue_max_messages, "queue_max_bytes": queue_max_bytes,
            "window_messages": window_messages, "window_bytes": window_bytes,
            "max_output_bytes": max_output_bytes, "ticket_keys_live": ticket_keys_live,
            "io_threads": io_threads, **ms,
        })
        if store_sync not in _STORE_SYNC:
            raise ValueError(f"store_sync is one of {', '.join(_STORE_SYNC)}, not {store_sync!r}")
        cfg.store_sync = _STORE_SYNC.index(store_sync)
        cfg.manual_ack = bool(manual_ack)
        st = _open_store(store, store_timeout_ms)
        cfg.store = st
        try:
            self._handle = open_handle(lib.sdk_server_start, cfg, on_event, _native.sdk_server_event_fn,
                                       _session_event, lib.sdk_server_close, _destroy_with(st), "server",
                                       on_message)
        except BaseException:
            lib.sdk_store_close(st)
            raise
        self._manual_ack = bool(manual_ack)
        with self._handle.call() as ptr:
            self._port = int(lib.sdk_server_port(ptr))

    # ---- lifetime ----

    def stop(self) -> None:
        """sdk_server_close: tell every client (GOING_AWAY), flush for about a second, close
        everything and wake blocked callers with ClosedError. Idempotent."""
        if self._handle is not None:
            self._handle.close()

    @property
    def port(self) -> int:
        """The bound TCP port (the one picked when listening on port 0)."""
        return self._port

    # ---- messages ----

    def recv(self, timeout: Optional[float] = None, expect: Any = None) -> Any:
        """The next message from any client (.session names it), waiting up to timeout
        seconds (None: no limit); returning it acknowledges it to the client.
        expect=ProtobufClass as in Client.recv. Raises TimeoutError, ClosedError (stopped)."""
        rc, msg = receive(self._handle_or_raise(), self._inbox, lib.sdk_server_recv, timeout)
        check(rc)
        return delivered(msg, expect)

    def send(self, session: int, data: Any, timeout: Optional[float] = None, *,
             type_name: Optional[str] = None) -> None:
        """Queue bytes or a protobuf message for one session (delivered in order, once, across
        the client's reconnects). Waits up to timeout seconds while its queue is full, then
        raises QueueFullError. Raises NotFoundError, TooBigError, ClosedError, ..."""
        tname, body = payload(data, type_name)
        with self._call() as ptr:
            if tname is None:
                rc = wait(lambda ms: int(lib.sdk_server_send(ptr, session, body, len(body), ms)), timeout,
                          SDK_EQUEUEFULL)
            else:
                rc = wait(lambda ms: int(lib.sdk_server_send_typed(ptr, session, tname, body, len(body), ms)),
                          timeout, SDK_EQUEUEFULL)
        check(rc, _native.last_call_error() if rc == CODES["SDK_ETOOBIG"] else "")

    def ack(self, msg: Message) -> None:
        """With manual_ack: acknowledge msg and every earlier message of its session (under
        store_sync="always" once the store holds that). Raises NotFoundError (its session is
        gone), InvalidArgumentError (not a manual_ack server)."""
        with self._call() as ptr:
            rc = int(lib.sdk_server_ack(ptr, msg.session, msg.seq))
        check(rc)

    def reply(self, msg: Message, data: Any, timeout: Optional[float] = None, *,
              type_name: Optional[str] = None) -> None:
        """Send data to msg's session and, with manual_ack, acknowledge msg in the same step
        (stored together under store_sync="always": a request is answered exactly once
        across a crash). Waits and raises as send()."""
        tname, body = payload(data, type_name)
        ack_seq = msg.seq if self._manual_ack else 0
        with self._call() as ptr:
            rc = wait(lambda ms: int(lib.sdk_server_reply(ptr, msg.session, ack_seq, tname, body, len(body), ms)),
                      timeout, SDK_EQUEUEFULL)
        check(rc, _native.last_call_error() if rc == CODES["SDK_ETOOBIG"] else "")

    def fileno(self) -> int:
        """sdk_server_fd: as Client.fileno, for the server (a message for recv, room in a
        session's queue, the server stopped). Owned by the server: do not close it."""
        fd = ctypes.c_int(-1)
        with self._call() as ptr:
            rc = int(lib.sdk_server_fd(ptr, ctypes.byref(fd)))
        check(rc)
        return fd.value

    def sessions(self) -> List[Dict[str, Any]]:
        """A snapshot of every session: a dict per session with every sdk_session_info field
        by its C name ("state" and "last_cause" as names)."""
        arr = ctypes.POINTER(_native.sdk_session_info)()
        count = ctypes.c_size_t()
        with self._call() as ptr:
            rc = lib.sdk_server_sessions(ptr, ctypes.byref(arr), ctypes.byref(count))
        check(rc)
        try:
            return [_session_dict(arr[i]) for i in range(count.value)]
        finally:
            if arr:
                lib.sdk_sessions_free(arr)

    def close_session(self, session: int, reason: str = "", reconnect_allowed: bool = True) -> None:
        """End a session: the client gets a close frame with reason; with
        reconnect_allowed=False it stops and reports RejectedError. Does not block.
        Raises NotFoundError."""
        with self._call() as ptr:
            rc = lib.sdk_server_close_session(ptr, session, reason.encode(), bool(reconnect_allowed))
        check(rc)

    def __repr__(self) -> str:
        return f"<lifeline.Server port={self._port}>"
