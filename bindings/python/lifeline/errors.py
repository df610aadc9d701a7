"""Exceptions: one class per sdk_err code, built from the library's own table.

Every exception derives from lifeline.Error and, where one fits, from the builtin a Python
programmer already catches: lifeline.TimeoutError is a builtins.TimeoutError,
ConnectionRefusedError a builtins.ConnectionRefusedError, ConnectError, TLSError and
DisconnectedError ConnectionErrors, InvalidArgumentError and TooBigError ValueErrors,
NotFoundError a LookupError, ResolveError, ListenError and IOFailureError OSErrors. So
`except TimeoutError:` catches lifeline's too, and the two classes named like builtins are
left out of `from lifeline import *` (write lifeline.TimeoutError), so they never replace
the builtin names in user code. Each carries the C code (`code`), its name
(`name`, e.g. "SDK_ETIMEDOUT"), the library's sentence for it (`text`) and the detail
(`detail`, e.g. OpenSSL's reason). `message` is set where a received message would
otherwise be lost with the exception (TypeMismatchError from recv(expect=...)).

The classes are declared here for the codes the binding knows; the table is then
completed from sdk_errname(), so a code added to the C library later still gets a class
(named after it) instead of a bare Error.
"""

from __future__ import annotations

import builtins
import errno as _errno
from typing import Any, Dict, Optional, Type

from ._native import lib, text


class Error(Exception):
    """A Lifeline call failed. `code`, `name`, `text`, `detail` describe why."""

    code: int
    name: str
    detail: str
    message: Any

    def __init__(self, code: int, name: Optional[str] = None, detail: str = "", message: Any = None):
        name = name or text(lib.sdk_errname(code))
        super().__init__(code, name, detail)
        self.code = code
        self.name = name
        self.text = text(lib.sdk_strerror(code))
        self.detail = detail or ""
        self.message = message
        if isinstance(self, OSError):
            _fix_oserror_fields(self, code, self.text)

    def __str__(self) -> str:
        out = f"{self.name}: {self.text}"
        if self.detail and self.detail != self.text:
            out += f": {self.detail}"
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.name!r}, {self.detail!r})"


def _fix_oserror_fields(exc: OSError, code: int, sentence: str) -> None:
    # OSError.__init__ read (code, name, detail) as (errno, strerror, filename).
    exc.errno = _POSIX_ERRNO.get(code)  # type: ignore[assignment]  # None: no POSIX errno fits
    exc.strerror = sentence
    exc.filename = None


class InvalidArgumentError(Error, ValueError):
    """SDK_EINVAL"""


class NoMemoryError(Error, MemoryError):
    """SDK_ENOMEM"""


class TimeoutError(Error, builtins.TimeoutError):
    """SDK_ETIMEDOUT: the call's timeout passed."""


class ClosedError(Error):
    """SDK_ECLOSED: the client or server is closed (and, for recv, nothing is left to read)."""


class ResolveError(Error, OSError):
    """SDK_ERESOLVE"""


class ConnectionRefusedError(Error, builtins.ConnectionRefusedError):
    """SDK_ECONNREFUSED"""


class ConnectError(Error, builtins.ConnectionError):
    """SDK_ECONNECT"""


class TLSError(Error, builtins.ConnectionError):
    """SDK_ETLS"""


class PeerAuthError(TLSError):
    """SDK_EPEERAUTH: the peer's certificate or host name did not verify."""


class ProtocolError(Error):
    """SDK_EPROTO"""


class TooBigError(Error, ValueError):
    """SDK_ETOOBIG"""


class QueueFullError(Error):
    """SDK_EQUEUEFULL: no room in the send queue before the timeout."""


class DisconnectedError(Error, builtins.ConnectionError):
    """SDK_EDISCONNECTED"""


class RejectedError(ClosedError):
    """SDK_EREJECTED: the server ended the session and asked the client not to come back.
    Calls on a client closed that way raise it (it is a ClosedError too)."""


class TypeMismatchError(Error):
    """SDK_ETYPE: a received message's type is not the one expected (see .message)."""


class NotFoundError(Error, LookupError):
    """SDK_ENOTFOUND: no such session."""


class IOFailureError(Error, OSError):
    """SDK_EIO"""


class ListenError(Error, OSError):
    """SDK_ELISTEN: the server could not bind or listen (e.g. address in use)."""


_KNOWN: Dict[str, Type[Error]] = {
    "SDK_EINVAL": InvalidArgumentError,
    "SDK_ENOMEM": NoMemoryError,
    "SDK_ETIMEDOUT": TimeoutError,
    "SDK_ECLOSED": ClosedError,
    "SDK_ERESOLVE": ResolveError,
    "SDK_ECONNREFUSED": ConnectionRefusedError,
    "SDK_ECONNECT": ConnectError,
    "SDK_ELISTEN": ListenError,
    "SDK_ETLS": TLSError,
    "SDK_EPEERAUTH": PeerAuthError,
    "SDK_EPROTO": ProtocolError,
    "SDK_ETOOBIG": TooBigError,
    "SDK_EQUEUEFULL": QueueFullError,
    "SDK_EDISCONNECTED": DisconnectedError,
    "SDK_EREJECTED": RejectedError,
    "SDK_ETYPE": TypeMismatchError,
    "SDK_ENOTFOUND": NotFoundError,
    "SDK_EIO": IOFailureError,
}

_UNKNOWN_NAME = "SDK_EUNKNOWN"  # what sdk_errname answers past the end of the table


def _build_table() -> Dict[int, Type[Error]]:
    table: Dict[int, Type[Error]] = {}
    code = 1  # 0 is SDK_OK
    while True:
        name = text(lib.sdk_errname(code))
        if name == _UNKNOWN_NAME or code > 1000:
            break
        cls = _KNOWN.get(name)
        if cls is None:
            cls = type(f"Error_{name}", (Error,), {"__doc__": name, "__module__": __name__})
        table[code] = cls
        code += 1
    return table


_BY_CODE = _build_table()
#: Every code by name, SDK_OK included: {"SDK_OK": 0, "SDK_EINVAL": 1, ...}.
CODES: Dict[str, int] = {"SDK_OK": 0, **{text(lib.sdk_errname(code)): code for code in _BY_CODE}}

_POSIX_ERRNO = {
    CODES.get("SDK_ETIMEDOUT", -1): _errno.ETIMEDOUT,
    CODES.get("SDK_ECONNREFUSED", -1): _errno.ECONNREFUSED,
}


def error_class(code: int) -> Type[Error]:
    """The exception class for an sdk_err code (Error for codes the library does not name)."""
    return _BY_CODE.get(code, Error)


def make_error(code: int, detail: str = "", message: Any = None) -> Error:
    return error_class(code)(code, None, detail, message)


def check(code: int, detail: str = "") -> None:
    """Raise the mapped exception unless code is SDK_OK."""
    if code != 0:
        raise make_error(code, detail)
