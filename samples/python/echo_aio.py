#!/usr/bin/env python3
"""echo_aio.py: the asyncio API (lifeline.aio) in one file.

    echo_aio.py --connect HOST:PORT --ca CA.pem [--clients N] [--messages M]
    echo_aio.py --self-test [--clients N] [--messages M]

N clients in one event loop (default 10), each sending M numbered messages (default 100)
to an echoing server (lifeline-server) while a second task per client awaits the echoes;
every client checks that it got each of its messages back once, in order. --self-test
starts the server in the same loop (lifeline.aio.Server with throwaway certificates) and
exits non-zero on any mismatch. No thread waits for a message: every await is on the
client's pollable descriptor (sdk_fd).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

try:
    import lifeline.aio as aio
except ImportError:  # run from a checkout: the binding beside the samples
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "bindings" / "python"))
    import lifeline.aio as aio


async def one_client(address: str, ca: str, me: int, count: int) -> bool:
    async with aio.Client(address=address, ca_file=ca, reconnect_max=2.0) as c:

        async def receive() -> List[int]:
            got: List[int] = []
            while len(got) < count:
                m = await c.recv(timeout=30)
                got.append(int.from_bytes(m.data[4:8], "little"))
            return got

        receiver = asyncio.create_task(receive())
        for n in range(count):
            await c.send(me.to_bytes(4, "little") + n.to_bytes(4, "little"))
        await c.flush(timeout=30)  # every message reached the server's application
        got = await receiver
    ok = got == list(range(count))
    print(f"client {me}: {len(got)} echoes, {'in order, each once' if ok else 'MISMATCH'}")
    return ok


async def echo(srv: aio.Server) -> None:
    async for m in srv:  # m.session says which client sent it
        await srv.send(m.session, m.data)


async def main(address: Optional[str], ca: Optional[str], clients: int, count: int) -> int:
    with tempfile.TemporaryDirectory(prefix="echo-aio-") as certs:
        if address is None:
            async with aio.Server("127.0.0.1:0", dev_certs=certs) as srv:
                server_task = asyncio.create_task(echo(srv))
                ca = srv.sync.dev_certs.ca
                results = await asyncio.gather(*(one_client(f"127.0.0.1:{srv.port}", ca, i, count)
                                                 for i in range(clients)))
                server_task.cancel()
        else:
            assert ca is not None
            results = await asyncio.gather(*(one_client(address, ca, i, count) for i in range(clients)))
    return 0 if all(results) else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connect", help="HOST:PORT of an echoing lifeline-server")
    ap.add_argument("--ca", help="its CA certificate (PEM)")
    ap.add_argument("--self-test", action="store_true", help="start the server in this loop")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--messages", type=int, default=100)
    a = ap.parse_args()
    if not a.self_test and not (a.connect and a.ca):
        ap.error("give --connect and --ca, or --self-test")
    try:
        sys.exit(asyncio.run(main(None if a.self_test else a.connect, a.ca, a.clients, a.messages)))
    except KeyboardInterrupt:
        sys.exit(130)  # Ctrl-C: the awaits were cancelled and every client closed
