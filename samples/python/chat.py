#!/usr/bin/env python3
"""chat.py: a line chat over Lifeline, on the Python binding (bindings/python).

Every line read from stdin is sent as one message; every message that arrives is printed
as "<name>: <text>". Against the echoing lifeline-server you see your own lines come back;
against a server that relays each message to every client it is a chat room.

    python3 samples/python/chat.py --connect 127.0.0.1:7443 --ca /tmp/ll-certs/ca.pem --name alice

Connection events (connecting, connected, disconnected, reconnecting, session lost) go to
stderr, so a server restart is visible but harmless: lines typed meanwhile wait in the
client's queue and go out once it is back.

Messages. A chat line travels as JSON {"from", "id", "seq", "text"} labelled with the type
name "chat.Line". Lifeline delivers exactly once while the server process runs, but a
restarted server has lost its sessions, so what it had not acknowledged is sent again (at
least once, in order). "id" (random per run) and "seq" (1, 2, ... per sender) let every
receiver drop such repeats. A message without the label (a line from lifeline-cat, say)
is printed as it is.

Non-interactive (tests): --count N stops reading stdin after N lines; --expect N exits once
N distinct messages have arrived (after every line sent was acknowledged); --timeout S
bounds the whole run. The last line on stderr sums the run up:
    chat: sent=100 received=100 repeats=0 connects=2 reconnects=1 sessions_lost=1

Exit status: 0 done, 1 a send failed, 2 the connection failed or was closed by the
server, 3 --timeout passed, 64 usage error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import secrets
import sys
import threading
import time
from typing import Dict, Optional

try:
    import lifeline
except ImportError:
    # Not installed (pip install bindings/python): use the binding of this checkout.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "bindings", "python"))
    try:
        import lifeline
    except ImportError as exc:  # e.g. liblifeline.so not built: the message says what to do
        sys.exit(f"chat: {exc}")

LINE_TYPE = "chat.Line"
PROG = "chat"

EXIT_OK, EXIT_SEND, EXIT_CONNECTION, EXIT_TIMEOUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 3, 64, 130


def log(text: str) -> None:
    """One line on stderr. Also called from the library's I/O thread (on_event): short."""
    sys.stderr.write(f"{PROG}: {text}\n")
    sys.stderr.flush()


def parse_target(s: str) -> tuple:
    """'host:port' or '[v6]:port' -> (host, port): the library's syntax (sdk_parse_address)."""
    try:
        host, port = lifeline.parse_address(s)
    except ValueError:
        port = 0
    if port == 0:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got '{s}'")
    return host, port


_last_cause = ""  # the last failure printed, so that a retry loop does not repeat it


def on_event(ev: "lifeline.Event") -> None:
    """Connection state changes, on the library's I/O thread: print and return."""
    global _last_cause
    cause = ev.detail or (ev.error if ev.error != "SDK_OK" else "")
    if ev.type == "CONNECTING":
        log(f"connecting (attempt {ev.attempt})")
    elif ev.type == "CONNECTED":
        log("connected (" + ("session resumed" if ev.resumed else "new session") + ")")
        _last_cause = ""
    elif ev.type == "DISCONNECTED":
        log(f"disconnected: {cause}")
        _last_cause = cause
    elif ev.type == "RECONNECTING":
        # Carries why the attempt before it failed (e.g. connection refused while the
        # server restarts, or a certificate problem): say it once, not on every retry.
        why = f" (failed: {cause})" if cause and cause != _last_cause else ""
        log(f"reconnecting in {ev.delay * 1000:.0f} ms{why}")
        _last_cause = cause or _last_cause
    elif ev.type == "SESSION_LOST":
        log("the server lost our session (it restarted?): unacknowledged lines are sent again")
    elif ev.type == "CLOSED" and ev.error != "SDK_OK":
        log(f"closed: {cause}")


class Chat:
    """Receiving side: a thread that prints every message once, and counts."""

    def __init__(self, client: "lifeline.Client", expect: Optional[int]):
        self.client = client
        self.expect = expect
        self.received = 0               # distinct messages printed
        self.repeats = 0                # re-deliveries dropped
        self.last_seq: Dict[tuple, int] = {}  # sender -> highest seq seen
        self.stopping = False           # set by main before it closes the client
        self.closed_reason: Optional[str] = None  # why the library closed the client itself
        self.done = threading.Event()   # --expect reached, or the client closed
        self.thread = threading.Thread(target=self._run, name="chat-recv", daemon=True)
        if expect == 0:
            self.done.set()

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        for m in self.client:           # blocks in sdk_recv; ends once the client is closed
            self._show(m)
        if not self.stopping:
            # Closed by the library, not by us: the server ended the session for good.
            self.closed_reason = self.client.last_error()[1] or "closed"
        self.done.set()

    def _show(self, m: "lifeline.Message") -> None:
        if m.type != LINE_TYPE:         # e.g. a line from lifeline-cat: print it as it is
            print(m.data.decode("utf-8", "replace"), flush=True)
        else:
            try:
                line = json.loads(m.data)
                name, text, seq = line["from"], line["text"], int(line["seq"])
                sender = (line["id"], name)
            except (ValueError, KeyError, TypeError):
                log(f"dropped a malformed {LINE_TYPE} message")
                return
            # At least once and in order per sender: a seq not above the last one is a repeat.
            if seq <= self.last_seq.get(sender, 0):
                self.repeats += 1
                return
            self.last_seq[sender] = seq
            print(f"{name}: {text}", flush=True)
        self.received += 1
        if self.expect is not None and self.received >= self.expect:
            self.done.set()


def read_lines(lines: "queue.Queue", count: Optional[int]) -> None:
    """stdin reader thread: each line (at most count) into the queue, then None."""
    n = 0
    try:
        for raw in sys.stdin:
            if count is not None and n >= count:
                break
            lines.put(raw.rstrip("\r\n"))
            n += 1
    finally:
        lines.put(None)


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit status 64 (EX_USAGE), not argparse's 2
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def main() -> int:
    ap = ArgumentParser(description="Line chat over Lifeline: stdin lines out, messages in.")
    ap.add_argument("--connect", type=parse_target, default=("127.0.0.1", 7443), metavar="HOST:PORT",
                    help="server (default 127.0.0.1:7443; IPv6 as [::1]:7443)")
    ap.add_argument("--ca", metavar="FILE", help="trusted CA certificates, PEM (default: system store)")
    ap.add_argument("--name", default=os.environ.get("USER") or "me", help="your name in the chat")
    ap.add_argument("--retry", action="store_true",
                    help="start even if the server is not up yet, and keep trying")
    ap.add_argument("--count", type=int, metavar="N", help="stop reading stdin after N lines")
    ap.add_argument("--expect", type=int, metavar="N",
                    help="exit once N distinct messages have arrived")
    ap.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds in all (exit 3)")
    args = ap.parse_args()
    if (args.count is not None and args.count < 0) or (args.expect is not None and args.expect < 0):
        ap.error("--count and --expect take N >= 0")
    deadline = None if args.timeout is None else time.monotonic() + args.timeout

    def left() -> Optional[float]:
        """Seconds to the --timeout deadline (None: no limit); TimeoutError once it passed."""
        if deadline is None:
            return None
        if time.monotonic() >= deadline:
            raise lifeline.TimeoutError(lifeline.CODES["SDK_ETIMEDOUT"])
        return deadline - time.monotonic()

    host, port = args.connect
    try:
        client = lifeline.Client(
            host, port, ca_file=args.ca,
            retry_on_first_connect=args.retry,
            reconnect_max=2.0,              # back within about 2 s of the server
            max_reconnect_attempts=0,       # and keep trying for as long as it takes
            on_event=on_event)
    except lifeline.Error as e:            # "SDK_ECONNREFUSED: connection refused: connect ..."
        log(f"connect {host}:{port}: {e}")
        return EXIT_CONNECTION

    me, sent, status = secrets.token_hex(4), 0, EXIT_OK
    chat = Chat(client, args.expect)
    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    with client:                            # closes and frees the client on the way out
        chat.start()
        threading.Thread(target=read_lines, args=(lines, args.count), name="chat-stdin",
                         daemon=True).start()
        try:
            while True:
                try:
                    text = lines.get(timeout=min(0.2, left() or 0.2))
                except queue.Empty:
                    if chat.closed_reason is not None:
                        break
                    continue
                if text is None:            # end of input
                    break
                sent += 1
                line = {"from": args.name, "id": me, "seq": sent, "text": text}
                # Returns once queued; waits only while the queue is full (a long outage).
                client.send(json.dumps(line).encode(), timeout=left(), type_name=LINE_TYPE)
            if chat.closed_reason is None:
                # Every line acknowledged by the server's application (through restarts),
                # then what is still on its way back.
                client.flush(timeout=left())
                if args.expect is not None:
                    while not chat.done.wait(min(0.2, left() or 0.2)):
                        pass
                else:
                    time.sleep(0.5)
        except KeyboardInterrupt:
            status = EXIT_INTERRUPTED
        except lifeline.TimeoutError:
            log(f"timed out after {args.timeout:g} s: sent {sent} lines, received {chat.received}")
            status = EXIT_TIMEOUT
        except lifeline.ClosedError as e:   # closed by the library meanwhile (rejected)
            chat.closed_reason = chat.closed_reason or e.detail or str(e)
        except lifeline.Error as e:         # TooBigError, QueueFullError after --timeout, ...
            log(f"send line {sent}: {e}")
            status = EXIT_SEND
        chat.stopping = True
        client.close()                      # wakes the receiving thread
        chat.thread.join()
        if chat.closed_reason is not None:
            log(f"connection closed by the server: {chat.closed_reason}")
            status = EXIT_CONNECTION
        st = client.stats()
        log(f"sent={sent} received={chat.received} repeats={chat.repeats} connects={st['connects']} "
            f"reconnects={st['reconnects']} sessions_lost={st['sessions_lost']}")
    return status


if __name__ == "__main__":
    sys.exit(main())
