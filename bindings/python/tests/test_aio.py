"""Tests of lifeline.aio, the asyncio API, against the real library over loopback TLS.

Run: /usr/bin/python3 -m unittest discover -s bindings/python/tests -v
Environment: LIFELINE_LIBRARY, LIFELINE_BIN (lifeline-server; the restart test needs it and
redis-server, for a session store that outlives the server process).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package beside this directory, not an installed one

import lifeline  # noqa: E402
import lifeline.aio as aio  # noqa: E402

WAIT = 10.0
_tmp = tempfile.TemporaryDirectory(prefix="lifeline-aio-")
CERTS = lifeline.dev_certs(os.path.join(_tmp.name, "certs"))


def tearDownModule() -> None:
    _tmp.cleanup()


def os_threads() -> int:
    """Threads of this process as the kernel counts them (C I/O threads included)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise RuntimeError("no Threads: line in /proc/self/status")


def server_binary() -> Path:
    bin_dir = os.environ.get("LIFELINE_BIN")
    if bin_dir:
        return Path(bin_dir) / "lifeline-server"
    return Path(lifeline.library_path).resolve().parent.parent / "bin" / "lifeline-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def echo(srv: aio.Server) -> None:
    async for m in srv:
        try:
            await srv.send(m.session, m.data, timeout=WAIT)
        except (lifeline.NotFoundError, lifeline.ClosedError):
            pass  # the client, or the server, closed meanwhile


class TestAio(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.srv = await aio.start_server(cert_file=CERTS.server_cert, key_file=CERTS.server_key)
        self.echo = asyncio.create_task(echo(self.srv))

    async def asyncTearDown(self) -> None:
        await self.srv.close()
        await asyncio.wait_for(self.echo, WAIT)  # ends by itself: async for stops when closed

    def client(self, **kw: Any) -> aio.Client:
        return aio.Client("127.0.0.1", self.srv.port, ca_file=CERTS.ca, **kw)

    async def test_round_trip_and_async_for(self) -> None:
        async with self.client() as c:
            seqs = [await c.send(b"m%d" % i) for i in range(100)]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + 100)))
            await c.flush(timeout=WAIT)
            await c.flush_to(seqs[-1], timeout=WAIT)
            got = []
            async for m in c:
                got.append(m.data)
                if len(got) == 100:
                    break
            self.assertEqual(got, [b"m%d" % i for i in range(100)])
            self.assertEqual(c.state, "connected")
            with self.assertRaises(lifeline.TimeoutError):
                await c.recv(timeout=0.05)
        with self.assertRaises(lifeline.ClosedError):
            await c.recv()

    async def test_server_recv_gives_the_session(self) -> None:
        self.echo.cancel()
        await asyncio.gather(self.echo, return_exceptions=True)
        async with self.client() as a, self.client() as b:
            await a.send(b"from a")
            ma = await self.srv.recv(timeout=WAIT)
            await b.send(b"from b")
            mb = await self.srv.recv(timeout=WAIT)
            self.assertNotEqual(ma.session, mb.session)
            await self.srv.send(mb.session, b"to b")
            await self.srv.send(ma.session, b"to a")
            self.assertEqual((await a.recv(timeout=WAIT)).data, b"to a")
            self.assertEqual((await b.recv(timeout=WAIT)).data, b"to b")
            with self.assertRaises(lifeline.NotFoundError):
                await self.srv.send(ma.session + mb.session + 1000, b"nobody")
        self.echo = asyncio.create_task(echo(self.srv))

    async def test_cancelled_recv_takes_nothing(self) -> None:
        async with self.client() as c:
            waiting = asyncio.create_task(c.recv())
            await asyncio.sleep(0.05)
            waiting.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await waiting
            await c.send(b"after the cancel")
            self.assertEqual((await c.recv(timeout=WAIT)).data, b"after the cancel")

    async def test_cancel_after_the_message_was_taken_keeps_it(self) -> None:
        self.echo.cancel()  # the loop is blocked below: the server must answer without it
        await asyncio.gather(self.echo, return_exceptions=True)
        self.echo = asyncio.create_task(asyncio.sleep(0))
        async with self.client() as c:
            await c.send(b"hello")
            session = (await self.srv.recv(timeout=WAIT)).session
            waiting = asyncio.create_task(c.recv())
            await asyncio.sleep(0)  # now it waits on the descriptor
            self.srv.sync.send(session, b"taken, then cancelled")
            # Without yielding to the loop: let the message arrive in the C queue, run the
            # descriptor's callback by hand (it takes the message for the waiting recv), and
            # cancel the task before it could resume with it.
            waker = c._w()
            deadline = time.monotonic() + WAIT
            while waker._retries and time.monotonic() < deadline:
                time.sleep(0.01)
                waker._ready()  # done once the waiting recv took the message
            self.assertFalse(waker._retries, "the message never came")
            waiting.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await waiting
            self.assertEqual((await c.recv(timeout=0)).data, b"taken, then cancelled")

    async def test_recv_under_tight_timeouts_loses_nothing(self) -> None:
        # A stream of messages against a recv cancelled by its timeout again and again.
        total = 300
        async with self.client() as c:
            for i in range(total):
                await c.send(i.to_bytes(4, "little"))
            got: List[int] = []
            timeouts = 0
            deadline = time.monotonic() + WAIT
            while len(got) < total and time.monotonic() < deadline:
                try:
                    m = await asyncio.wait_for(c.recv(), 0.0005)
                except asyncio.TimeoutError:
                    timeouts += 1
                    continue
                got.append(int.from_bytes(m.data, "little"))
            self.assertEqual(got, list(range(total)))

    async def test_full_send_queue_waits_then_raises(self) -> None:
        self.echo.cancel()
        await asyncio.gather(self.echo, return_exceptions=True)
        async with self.client(queue_max_messages=4) as c:
            with self.assertRaises(lifeline.QueueFullError):
                for _ in range(1000):
                    await c.send(b"x" * 100, timeout=0.2)
        self.echo = asyncio.create_task(echo(self.srv))

    async def test_connect_failure_raises(self) -> None:
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            with self.assertRaises(lifeline.ConnectionRefusedError):
                await aio.connect("127.0.0.1", holder.getsockname()[1], ca_file=CERTS.ca)

    async def test_no_thread_per_waiting_call(self) -> None:
        async with self.client() as c:
            await c.send(b"warm up")
            await c.recv(timeout=WAIT)
            before = os_threads()
            waiters = [asyncio.create_task(c.recv()) for _ in range(50)]
            await asyncio.sleep(0.1)
            self.assertEqual(os_threads(), before)
            for i in range(50):
                await c.send(b"%d" % i)
            got = await asyncio.wait_for(asyncio.gather(*waiters), WAIT)
            self.assertEqual(sorted(m.data for m in got), sorted(b"%d" % i for i in range(50)))
            self.assertEqual(os_threads(), before)


class RedisProcess:
    """A redis-server of this test's own on a free loopback port, in a temp dir."""

    def __init__(self, directory: str):
        for _ in range(10):
            self.port = free_port()
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", directory],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._answers():
                return
            self.stop()
        raise RuntimeError("redis-server did not start")

    def _answers(self) -> bool:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(WAIT)


class ServerProcess:
    """lifeline-server (echo) with a session store, on a fixed port once it has one."""

    def __init__(self, store: str, port: int = 0):
        deadline = time.monotonic() + WAIT
        while True:
            self.proc = subprocess.Popen(
                [str(server_binary()), "--listen", f"127.0.0.1:{port}", "--dev-certs", CERTS.dir,
                 "--store", store], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            line = self.proc.stdout.readline().decode() if self.proc.stdout else ""
            if line.startswith("listening on "):
                self.port = int(line.rsplit(":", 1)[1])
                return
            self.proc.wait()
            if port == 0 or time.monotonic() >= deadline:
                raise RuntimeError(f"lifeline-server did not start: {line!r}")
            time.sleep(0.05)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(WAIT)
        if self.proc.stdout:
            self.proc.stdout.close()
        return rc


@unittest.skipUnless(server_binary().exists() and shutil.which("redis-server"),
                     "needs lifeline-server (LIFELINE_BIN) and redis-server")
class TestAioManyClientsThroughRestart(unittest.IsolatedAsyncioTestCase):
    CLIENTS = 100
    EACH = 30

    async def test_hundred_clients_exactly_once_through_a_restart(self) -> None:
        redis = RedisProcess(_tmp.name)
        self.addCleanup(redis.stop)
        store = f"redis://127.0.0.1:{redis.port}"
        server = ServerProcess(store)
        self.addCleanup(lambda: server.proc.poll() is not None or server.stop())
        port = server.port
        clients = [aio.Client("127.0.0.1", port, ca_file=CERTS.ca, reconnect_min=0.05, reconnect_max=0.5)
                   for _ in range(self.CLIENTS)]
        await asyncio.gather(*(c.open() for c in clients))
        threads = os_threads()
        progress: Dict[int, List[int]] = {i: [] for i in range(self.CLIENTS)}
        most_threads = threads

        async def run(i: int, c: aio.Client) -> None:
            async def receive() -> None:
                while len(progress[i]) < self.EACH:
                    m = await c.recv(timeout=WAIT * 3)
                    progress[i].append(int.from_bytes(m.data[:4], "little"))

            receiver = asyncio.create_task(receive())
            for n in range(self.EACH):
                await c.send(n.to_bytes(4, "little") + i.to_bytes(4, "little"))
                await asyncio.sleep(0.01)
            await c.flush(timeout=WAIT * 3)
            await receiver

        async def restart() -> None:
            nonlocal server, most_threads
            while sum(map(len, progress.values())) < self.CLIENTS * self.EACH // 3:
                await asyncio.sleep(0.01)
            self.assertEqual(await asyncio.to_thread(server.stop), 0)
            await asyncio.sleep(0.2)
            server = await asyncio.to_thread(ServerProcess, store, port)

        async def watch_threads() -> None:
            nonlocal most_threads
            while True:
                most_threads = max(most_threads, os_threads())
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch_threads())
        restarter = asyncio.create_task(restart())
        await asyncio.wait_for(asyncio.gather(*(run(i, c) for i, c in enumerate(clients))), 60)
        await asyncio.wait_for(restarter, WAIT)
        watcher.cancel()
        for i in range(self.CLIENTS):
            self.assertEqual(progress[i], list(range(self.EACH)), f"client {i}")
        self.assertTrue(all(c.sync.stats()["reconnects"] >= 1 for c in clients), "no reconnect: no restart?")
        self.assertEqual(sum(c.sync.stats()["sessions_lost"] for c in clients), 0)
        # to_thread ran the restart's blocking steps on one executor thread, made once.
        self.assertLessEqual(most_threads, threads + 1, f"threads grew from {threads} to {most_threads}")
        await asyncio.gather(*(c.close() for c in clients))


class TestCtrlC(unittest.TestCase):
    def test_ctrl_c_ends_the_loop_cleanly(self) -> None:
        script = textwrap.dedent(f"""
            import asyncio, sys
            sys.path.insert(0, {str(HERE.parent)!r})
            import lifeline.aio as aio

            async def main():
                async with aio.Server(cert_file={CERTS.server_cert!r}, key_file={CERTS.server_key!r}) as srv:
                    async with aio.Client("127.0.0.1", srv.port, ca_file={CERTS.ca!r}) as c:
                        print("waiting", flush=True)
                        try:
                            await c.recv()
                        finally:
                            print("recv cancelled", flush=True)
                    print("not reached", flush=True)
                print("not reached", flush=True)

            async def run():
                try:
                    await main()
                finally:
                    print("closed", flush=True)

            try:
                asyncio.run(run())
            except KeyboardInterrupt:
                print("interrupted cleanly", flush=True)
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None
        self.assertEqual(proc.stdout.readline().strip(), "waiting")
        time.sleep(0.1)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
        self.assertEqual(proc.returncode, 0, err)
        # The recv was cancelled, both `async with` blocks closed their objects, and the
        # KeyboardInterrupt reached asyncio.run's caller, within the time bound below.
        self.assertEqual(out.split("\n")[:3], ["recv cancelled", "closed", "interrupted cleanly"], err)
        self.assertNotIn("Traceback", err)
        self.assertLess(time.monotonic() - started, 5.0)


if __name__ == "__main__":
    unittest.main()
