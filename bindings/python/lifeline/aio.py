"""lifeline.aio: asyncio Client and Server on the same C library as the blocking API.

    import asyncio, lifeline.aio

    async def main() -> None:
        async with lifeline.aio.Client("localhost", 7443, ca_file="ca.pem") as c:
            await c.send(b"hello")
            print((await c.recv()).data)
            await c.flush()
            async for m in c:          # until the client is closed
                ...

No OS thread waits for a call: each client and server has one pollable descriptor (sdk_fd,
sdk_server_fd) that loop.add_reader watches while some coroutine awaits it. Every call is
tried at once with timeout 0, and retried each time the descriptor says that something
changed (the rule in sdk.h). Opening (sdk_connect, certificates) and closing (sdk_close
waits for its I/O thread) are blocking C calls: they run in the loop's default executor.

Cancellation is clean: a cancelled `await recv()` takes no message, or, if the message was
already taken when the cancellation arrived, keeps it for the next recv (it is never lost).
A cancelled send may have queued its message already (it is then sent; only its sequence
number is lost). Timeouts are in seconds, as everywhere: recv(timeout=2.5) raises
lifeline.TimeoutError, or use asyncio.timeout() around any await.

A Client or Server belongs to the event loop it was opened in. The sync objects stay
reachable as .sync (e.g. stats(), state, sessions()), for calls that do not wait.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any, Callable, Dict, Optional, Tuple, Type, TypeVar

from . import client as _client
from . import server as _server
from ._core import Message, SDK_ETIMEDOUT
from .errors import CODES, ClosedError, QueueFullError, TimeoutError, make_error

__all__ = ["Client", "Server", "connect", "start_server"]

T = TypeVar("T")
E = TypeVar("E", bound="_Endpoint")
# One try of a call: (True, result) when it completed, (False, None) when it must wait.
Attempt = Callable[[], Tuple[bool, Any]]


class _Waker:
    """The descriptor of one Client or Server, watched while at least one call waits on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int):
        self._loop = loop
        self._fd = fd
        self._retries: Dict[Callable[[], bool], "asyncio.Future[Any]"] = {}
        self._watching = False

    def add(self, retry: Callable[[], bool], fut: "asyncio.Future[Any]") -> None:
        self._retries[retry] = fut
        if not self._watching:
            self._loop.add_reader(self._fd, self._ready)
            self._watching = True

    def discard(self, retry: Callable[[], bool]) -> None:
        self._retries.pop(retry, None)
        if not self._retries and self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False

    def _ready(self) -> None:
        try:
            os.read(self._fd, 8)  # reset it before retrying: a change after this signals again
        except BlockingIOError:
            pass
        for retry in list(self._retries):
            if retry():
                self.discard(retry)

    def finish(self) -> None:
        """After the C close: every waiting call tries once more (it gets what is left, or
        ClosedError), then the descriptor is unwatched before the handle, and it, is freed."""
        for retry, fut in list(self._retries.items()):
            if not retry() and not fut.done():
                fut.set_exception(ClosedError(CODES["SDK_ECLOSED"], None, "closed while waiting"))
        self._retries.clear()
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False


async def _until(waker: _Waker, attempt: Attempt, timeout: Optional[float],
                 keep: Optional[Callable[[Any], None]] = None) -> Any:
    """attempt() now and then at every readiness of waker's descriptor, until it completes
    (or raises), at most timeout seconds (None: no limit). keep(result) takes a result that
    was ready when a cancellation arrived, so that it is not lost."""
    done, value = attempt()
    if done:
        return value
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def retry() -> bool:
        if fut.done():  # cancelled or timed out: take nothing more
            return True
        try:
            finished, result = attempt()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            fut.set_exception(exc)
            return True
        if finished:
            fut.set_result(result)
        return finished

    waker.add(retry, fut)
    try:
        if timeout is None:
            return await fut
        return await asyncio.wait_for(fut, timeout)
    except asyncio.CancelledError:
        if keep is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
            keep(fut.result())
        raise
    except asyncio.TimeoutError:
        raise make_error(SDK_ETIMEDOUT, f"no result within {timeout} s") from None
    finally:
        waker.discard(retry)


def _try(call: Callable[[], T], not_yet: Type[BaseException]) -> Tuple[bool, Optional[T]]:
    """One non-blocking try of a sync call that raises not_yet while it would have to wait."""
    try:
        return True, call()
    except not_yet:
        return False, None


async def _enqueue(waker: _Waker, send: Callable[[], Any], timeout: Optional[float]) -> Any:
    """A send: tried now and whenever the queue may have room; QueueFullError after timeout."""
    try:
        return await _until(waker, lambda: _try(send, QueueFullError), timeout)
    except TimeoutError as exc:
        raise make_error(CODES["SDK_EQUEUEFULL"], exc.detail) from None


async def _blocking(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """A blocking C call (connect, start, close) in the loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kw))


class _Endpoint:
    """What the asyncio Client and Server share: open in __aenter__, close in __aexit__,
    async iteration over recv()."""

    _sync: Any = None
    _waker: Optional[_Waker] = None
    _make_sync: Callable[..., Any]  # lifeline.Client or lifeline.Server

    def __init__(self, *args: Any, **kw: Any):
        self._args, self._kw = args, kw

    async def open(self: E) -> E:
        """Make the blocking object (sdk_connect, sdk_server_start) in the loop's executor;
        raises as its constructor does. Idempotent."""
        if self._sync is None:
            self._adopt(await _blocking(type(self)._make_sync, *self._args, **self._kw))
        return self

    async def __aenter__(self: E) -> E:
        return await self.open()

    @property
    def sync(self) -> Any:
        """The underlying lifeline.Client or lifeline.Server (for calls that never wait)."""
        if self._sync is None:
            raise ClosedError(CODES["SDK_ECLOSED"], None, "not opened yet: await open() or use async with")
        return self._sync

    def _adopt(self, sync: Any) -> None:
        self._sync = sync
        self._waker = _Waker(asyncio.get_running_loop(), sync.fileno())

    def _w(self) -> _Waker:
        if self._waker is None:
            raise ClosedError(CODES["SDK_ECLOSED"], None, "closed, or not opened yet")
        return self._waker

    async def recv(self, timeout: Optional[float] = None, expect: Any = None) -> Any:
        """The next message (Message; with expect=ProtobufClass, parsed), as the sync recv.
        Raises lifeline.TimeoutError after timeout seconds, ClosedError once closed and
        drained. Cancelling it loses no message."""
        sync = self.sync

        def keep(msg: Any) -> None:
            sync._inbox.keep([msg])  # the next recv, sync or not, returns it first

        return await _until(self._w(), lambda: _try(lambda: sync.recv(0, expect), TimeoutError), timeout, keep)

    def __aiter__(self) -> "_Endpoint":
        return self

    async def __anext__(self) -> Message:
        try:
            msg: Message = await self.recv()
        except ClosedError:
            raise StopAsyncIteration from None
        return msg

    async def _close(self, close: Callable[[], None]) -> None:
        if self._sync is None or self._waker is None:
            return
        await _blocking(close)
        waker, self._waker = self._waker, None
        waker.finish()
        handle = self._sync._handle
        if handle is not None:
            handle.release()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class Client(_Endpoint):
    """lifeline.Client for asyncio: the same keywords (durations in seconds), connected by
    `async with` (or `await client.open()`, or `await lifeline.aio.connect(...)`); open()
    runs sdk_connect in the executor (it blocks up to connect_timeout) and raises as
    lifeline.Client() does."""

    _make_sync = _client.Client

    async def send(self, data: Any, timeout: Optional[float] = None, *, type_name: Optional[str] = None) -> int:
        """Queue a message (bytes-like or protobuf) and return its client sequence; waits
        while the send queue is full, at most timeout seconds, then raises QueueFullError."""
        sync = self.sync
        seq: int = await _enqueue(self._w(), lambda: sync.send(data, 0, type_name=type_name), timeout)
        return seq

    async def flush(self, timeout: Optional[float] = None) -> None:
        """Wait until every message sent so far is acknowledged (at most timeout seconds)."""
        sync = self.sync
        await _until(self._w(), lambda: _try(lambda: sync.flush(0), TimeoutError), timeout)

    async def flush_to(self, seq: int, timeout: Optional[float] = None) -> None:
        """Wait until message seq (and every one before it) is acknowledged."""
        sync = self.sync
        await _until(self._w(), lambda: _try(lambda: sync.flush_to(seq, 0), TimeoutError), timeout)

    @property
    def state(self) -> str:
        return "closed" if self._sync is None else str(self._sync.state)

    async def close(self) -> None:
        """sdk_close (in the executor: it waits for close_linger and the I/O thread), then
        free the client. Calls still waiting raise ClosedError. Idempotent."""
        if self._sync is not None:
            await self._close(self._sync.close)


class Server(_Endpoint):
    """lifeline.Server for asyncio: the same keywords, started by `async with` (or
    `await server.open()`, or `await lifeline.aio.start_server(...)`). recv() gives each
    message with its .session; send(session, data) answers it."""

    _make_sync = _server.Server  # in the executor too: dev_certs may make keys

    @property
    def port(self) -> int:
        return int(self.sync.port)

    async def send(self, session: int, data: Any, timeout: Optional[float] = None, *,
                   type_name: Optional[str] = None) -> None:
        """Queue a message for one session; waits while its queue is full (at most timeout
        seconds, then QueueFullError). Raises NotFoundError, TooBigError, ClosedError."""
        sync = self.sync
        await _enqueue(self._w(), lambda: sync.send(session, data, 0, type_name=type_name), timeout)

    async def close(self) -> None:
        """sdk_server_close (in the executor: it drains for about a second), then free it."""
        if self._sync is not None:
            await self._close(self._sync.stop)

    stop = close


async def connect(*args: Any, **kw: Any) -> Client:
    """An open asyncio Client: `c = await lifeline.aio.connect("localhost", 7443, ...)`."""
    return await Client(*args, **kw).open()


async def start_server(*args: Any, **kw: Any) -> Server:
    """A started asyncio Server: `srv = await lifeline.aio.start_server(dev_certs=DIR)`."""
    return await Server(*args, **kw).open()
