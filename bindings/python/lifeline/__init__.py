"""Lifeline: a TLS message connection that survives network failures (Python binding).

A ctypes binding of the C library (liblifeline.so.0), found through the LIFELINE_LIBRARY
environment variable, else the copy bundled in this package (the wheel of `bash setup.sh
wheel`), else where `cmake --install` recorded it, else the system loader and the standard
library directories, else the build tree of this checkout (build/lib). Durations are in
seconds everywhere.

    import lifeline
    with lifeline.Client("localhost", 7443, ca_file="ca.pem") as c:
        c.send(b"hello")
        print(c.recv(timeout=5).data)

The C headers (sdk/include/lifeline/sdk.h and server.h) are the reference for every
setting and behaviour; this package mirrors them.
"""

from ._core import Message
from ._native import library_path, library_version, parse_address
from .client import Client, Event
from .errors import (
    CODES,
    ClosedError,
    ConnectError,
    ConnectionRefusedError,
    DisconnectedError,
    Error,
    InvalidArgumentError,
    IOFailureError,
    ListenError,
    NoMemoryError,
    NotFoundError,
    PeerAuthError,
    ProtocolError,
    QueueFullError,
    RejectedError,
    ResolveError,
    TimeoutError,
    TLSError,
    TooBigError,
    TypeMismatchError,
    error_class,
)
from .server import DevCerts, Server, SessionEvent, dev_certs

__version__ = "0.2.0"

# Not in __all__: TimeoutError and ConnectionRefusedError (lifeline.TimeoutError subclasses
# builtins.TimeoutError; `from lifeline import *` must not replace the builtin names).
__all__ = [
    "CODES",
    "Client",
    "ClosedError",
    "ConnectError",
    "DevCerts",
    "DisconnectedError",
    "Error",
    "Event",
    "IOFailureError",
    "ListenError",
    "InvalidArgumentError",
    "Message",
    "NoMemoryError",
    "NotFoundError",
    "PeerAuthError",
    "ProtocolError",
    "QueueFullError",
    "RejectedError",
    "ResolveError",
    "Server",
    "SessionEvent",
    "TLSError",
    "TooBigError",
    "TypeMismatchError",
    "dev_certs",
    "error_class",
    "parse_address",
    "library_path",
    "library_version",
]
