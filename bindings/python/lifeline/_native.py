"""The C library: where it is found, its structs and its function prototypes.

Everything here mirrors sdk/include/lifeline/sdk.h and server.h, which are the contract.
The struct field lists follow the headers field by field (order and C type); the test
suite checks them against the C compiler's offsetof/sizeof when a compiler is at hand.

Where the library is found: see _load (and README.md, "Install").

The library is loaded with ctypes.CDLL, never PyDLL: CDLL releases the GIL for the
duration of every foreign call, so a thread blocked in sdk_recv does not stop the rest
of the program.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sysconfig
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_int,
    c_size_t,
    c_uint,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any

ENV_VAR = "LIFELINE_LIBRARY"
SONAME = "liblifeline.so.0"
_PACKAGE = Path(__file__).resolve().parent
# Written by `cmake --install` (bindings/python/CMakeLists.txt): the installed library's path.
RECORD = _PACKAGE / "_library_location"

_FIX = (
    "Fix: install the C library (cmake -S . -B build && cmake --build build && cmake --install build, "
    "then pip install ./bindings/python again), or install the wheel that bundles it "
    f"(bash setup.sh wheel), or set {ENV_VAR}=/path/to/{SONAME}."
)


def _bundled() -> list[Path]:
    """The copy inside this package, in the wheel `bash setup.sh wheel` builds."""
    return [_PACKAGE / "_lib" / SONAME]


def _recorded() -> list[Path]:
    """Where `cmake --install` put the library, as it recorded in this package."""
    try:
        lines = RECORD.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [Path(line.strip()) for line in lines if line.strip()]


def _standard_dirs() -> list[Path]:
    """The library directories of a default `cmake --install` and of distribution packages."""
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    roots = [Path("/usr/local/lib"), Path("/usr/lib"), Path("/lib")]
    dirs = [root / arch for root in roots if arch] + roots + [Path("/usr/local/lib64"), Path("/usr/lib64")]
    return [d / SONAME for d in dirs]


def _build_tree() -> list[Path]:
    """The build tree of the checkout this package sits in: <repo>/build/lib."""
    repo = _PACKAGE.parent.parent.parent
    return [repo / "build" / "lib" / name for name in (SONAME, "liblifeline.so")]


def _try_paths(paths: list[Path], tried: list[str]) -> tuple[ctypes.CDLL, str] | None:
    for path in paths:
        if not path.exists():
            tried.append(f"{path} (absent)")
            continue
        try:
            return ctypes.CDLL(str(path)), str(path)
        except OSError as exc:
            tried.append(f"{path} ({exc})")
    return None


def _try_system_loader(tried: list[str]) -> tuple[ctypes.CDLL, str] | None:
    name = ctypes.util.find_library("lifeline")
    if not name:
        tried.append("ctypes.util.find_library('lifeline') (none)")
        return None
    try:
        return ctypes.CDLL(name), name
    except OSError as exc:
        tried.append(f"ctypes.util.find_library('lifeline') -> {name} ({exc})")
        return None


def _load() -> tuple[ctypes.CDLL, str]:
    """Find liblifeline: LIFELINE_LIBRARY, the bundled copy, the location `cmake --install`
    recorded, the system loader and standard paths, the build tree of a checkout."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        # An explicit choice is never silently replaced by another library.
        try:
            return ctypes.CDLL(explicit), explicit
        except OSError as exc:
            raise ImportError(f"lifeline: cannot load {ENV_VAR}={explicit!r}: {exc}") from exc
    tried: list[str] = []
    found = (
        _try_paths(_bundled() + _recorded(), tried)
        or _try_system_loader(tried)
        or _try_paths(_standard_dirs() + _build_tree(), tried)
    )
    if found is None:
        raise ImportError(f"lifeline: {SONAME} not found. Tried: " + "; ".join(tried) + ". " + _FIX)
    return found


lib, library_path = _load()

# ---- sdk.h ----

class sdk_event(Structure):
    _fields_ = [
        ("type", c_int),  # sdk_event_type
        ("error", c_int),
        ("detail", c_char_p),
        ("attempt", c_uint),
        ("delay_ms", c_uint),
        ("resumed", c_bool),
    ]


sdk_event_fn = CFUNCTYPE(None, POINTER(sdk_event), c_void_p)


class sdk_message(Structure):
    _fields_ = [
        ("data", POINTER(c_uint8)),
        ("len", c_size_t),
        ("type", c_char_p),
        ("seq", c_uint64),
        ("session", c_uint64),
        ("peer", c_char_p),
        ("flags", c_uint32),  # SDK_MSG_* bits (SDK_MSG_REDELIVERED)
    ]


SDK_MSG_REDELIVERED = 0x1

# sdk_message_fn: the message is passed as a plain pointer, so that the thunk can free it.
sdk_message_fn = CFUNCTYPE(None, c_void_p, c_void_p)


# sdk_retry_cause: the index into sdk_config.reconnect_policy.
RETRY_CAUSES = ("other", "refused", "reset", "heartbeat", "timeout", "certificate", "rejected", "protocol")


class sdk_retry_rule(Structure):
    _fields_ = [
        ("stop", c_bool),
        ("min_ms", c_int),
        ("max_ms", c_int),
    ]


# The config structs start with their size, which sdk_*config_init_sized records: the library
# reads only that many bytes, so this mirror may lag behind a newer library (the fields it
# lacks take their defaults) and a newer mirror is refused clearly by an older library.
class sdk_config(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("host", c_char_p),
        ("port", c_uint16),
        ("servername", c_char_p),
        ("ca_file", c_char_p),
        ("cert_file", c_char_p),
        ("key_file", c_char_p),
        ("max_frame", c_uint32),
        ("connect_timeout_ms", c_int),
        ("heartbeat_interval_ms", c_int),
        ("heartbeat_timeout_ms", c_int),
        ("reconnect_min_ms", c_int),
        ("reconnect_max_ms", c_int),
        ("max_reconnect_attempts", c_uint),
        ("retry_on_first_connect", c_bool),
        ("queue_max_messages", c_size_t),
        ("queue_max_bytes", c_size_t),
        ("window_messages", c_uint32),
        ("window_bytes", c_uint64),
        ("close_linger_ms", c_int),
        ("on_event", sdk_event_fn),
        ("user", c_void_p),
        ("on_message", sdk_message_fn),
        # 0.2
        ("address", c_char_p),
        ("reconnect_policy", sdk_retry_rule * len(RETRY_CAUSES)),
        ("endpoints", POINTER(c_char_p)),
        ("endpoint_count", c_size_t),
        ("keep_endpoint_order", c_bool),
    ]


class sdk_stats(Structure):
    _fields_ = [("state", c_int)] + [
        (name, c_uint64)
        for name in (
            "connects",
            "reconnects",
            "handshakes_full",
            "handshakes_resumed",
            "sessions_lost",
            "heartbeats_sent",
            "heartbeats_answered",
            "rtt_last_us",
            "rtt_smoothed_us",
            "msgs_sent",
            "bytes_sent",
            "msgs_received",
            "bytes_received",
            "retransmits",
            "duplicates_dropped",
            "queue_depth",
            "queue_bytes",
            "acks_sent",
            "acks_received",
        )
    ]


# ---- server.h ----

class sdk_session_event(Structure):
    _fields_ = [
        ("type", c_int),  # sdk_session_event_type
        ("session", c_uint64),
        ("cause", c_int),  # sdk_cause
        ("peer_addr", c_char_p),
        ("detail", c_char_p),  # 0.2: server events (TLS reload)
    ]


sdk_server_event_fn = CFUNCTYPE(None, POINTER(sdk_session_event), c_void_p)


class sdk_server_config(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("listen", c_char_p),
        ("cert_file", c_char_p),
        ("key_file", c_char_p),
        ("client_ca_file", c_char_p),
        ("max_frame", c_uint32),
        ("handshake_timeout_ms", c_int),
        ("heartbeat_min_ms", c_int),
        ("heartbeat_max_ms", c_int),
        ("session_ttl_ms", c_int),
        ("queue_max_messages", c_size_t),
        ("queue_max_bytes", c_size_t),
        ("window_messages", c_uint32),
        ("window_bytes", c_uint64),
        ("max_output_bytes", c_size_t),
        ("on_event", sdk_server_event_fn),
        ("user", c_void_p),
        ("on_message", sdk_message_fn),
        # 0.2
        ("store", c_void_p),
        ("store_sync", c_int),  # sdk_store_sync: 0 handover, 1 always
        ("manual_ack", c_bool),
        ("ticket_key_rotation_ms", c_uint64),
        ("ticket_keys_live", c_uint32),
        ("max_connections", c_uint32),
        ("max_handshakes", c_uint32),
        ("connect_rate_per_address", c_uint32),
        ("connect_burst_per_address", c_uint32),
        ("lame_duck_ms", c_uint32),
        ("takeover_timeout_ms", c_int),
        ("io_threads", c_uint32),
    ]


class sdk_session_info(Structure):
    _fields_ = [
        ("id", c_uint64),
        ("state", c_int),  # sdk_session_state
        ("peer_addr", c_char * 64),
        ("peer_identity", c_char * 256),
        ("connected_since_ms", c_uint64),
        ("last_heard_ms", c_uint64),
        ("rtt_smoothed_us", c_uint64),
        ("missed_heartbeats", c_uint32),
        ("last_cause", c_int),  # sdk_cause
        ("queued", c_uint64),
        ("unacked", c_uint64),
        ("received", c_uint64),
        ("connections", c_uint64),
    ]


# ---- the ABI check at load ----

# The library this binding is written for: the same major version and at least this minor
# (a newer minor only adds: docs/DEVELOPMENT.md, "ABI").
ABI_VERSION = (0, 2)

# The library writes these into memory the binding sized, and reads sdk_retry_rule as laid
# out here: a size that differs means a layout that differs. The two configs need no check:
# they carry their size (sdk_config_init_sized), which the library checks itself.
_EXACT_STRUCTS = {
    "sdk_retry_rule": sdk_retry_rule,
    "sdk_event": sdk_event,
    "sdk_message": sdk_message,
    "sdk_stats": sdk_stats,
    "sdk_session_event": sdk_session_event,
    "sdk_session_info": sdk_session_info,
}

_ABI_FIX = (
    "Use the library this binding came with (the same Lifeline checkout or release), "
    f"or point {ENV_VAR} at one."
)


def _library_version(library: ctypes.CDLL, path: str) -> tuple[int, int, str]:
    try:
        version_fn = library.sdk_version
        library.sdk_struct_size  # noqa: B018 (looked up now, so both are there or neither)
    except AttributeError:
        raise ImportError(
            f"lifeline: {path} is older than this binding (no sdk_version/sdk_struct_size, added "
            f"in 0.2.0; this binding needs {ABI_VERSION[0]}.{ABI_VERSION[1]} or newer). {_ABI_FIX}"
        ) from None
    version_fn.restype = c_char_p
    version_fn.argtypes = []
    version = (version_fn() or b"").decode("ascii", "replace")
    parts = version.split(".")
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        raise ImportError(f"lifeline: {path} reports version {version!r}, not MAJOR.MINOR.PATCH. {_ABI_FIX}")
    return int(parts[0]), int(parts[1]), version


def check_abi(library: ctypes.CDLL, path: str) -> str:
    """Refuse a library this binding would misread: another major version, an older minor,
    or a struct whose size differs from this mirror's. Returns the library's version."""
    major, minor, version = _library_version(library, path)
    if major != ABI_VERSION[0] or minor < ABI_VERSION[1]:
        raise ImportError(
            f"lifeline: {path} is version {version}; this binding is for "
            f"{ABI_VERSION[0]}.{ABI_VERSION[1]} or a newer {ABI_VERSION[0]}.x. {_ABI_FIX}"
        )
    size_fn = library.sdk_struct_size
    size_fn.restype = c_size_t
    size_fn.argtypes = [c_char_p]
    differ = []
    for name, mirror in _EXACT_STRUCTS.items():
        size = size_fn(name.encode("ascii"))
        if size != ctypes.sizeof(mirror):
            differ.append(f"{name} is {size} bytes there, {ctypes.sizeof(mirror)} here")
    if differ:
        raise ImportError(
            f"lifeline: {path} (version {version}) does not match this binding: "
            + "; ".join(differ) + f". Its structs would be misread. {_ABI_FIX}"
        )
    return version


library_version = check_abi(lib, library_path)

# ---- prototypes ----

_client_p = c_void_p  # sdk_client * (opaque)
_server_p = c_void_p  # sdk_server * (opaque)
_msg_pp = POINTER(POINTER(sdk_message))

_PROTOTYPES = {
    "sdk_strerror": (c_char_p, [c_int]),
    "sdk_errname": (c_char_p, [c_int]),
    "sdk_state_name": (c_char_p, [c_int]),
    "sdk_event_name": (c_char_p, [c_int]),
    "sdk_config_init_sized": (c_int, [POINTER(sdk_config), c_size_t]),
    "sdk_parse_address": (c_int, [c_char_p, c_char_p, c_size_t, POINTER(c_uint16)]),
    "sdk_message_free": (None, [POINTER(sdk_message)]),
    "sdk_connect": (c_int, [POINTER(sdk_config), POINTER(_client_p)]),
    "sdk_send": (c_int, [_client_p, c_char_p, c_size_t, c_int]),
    "sdk_send_typed": (c_int, [_client_p, c_char_p, c_char_p, c_size_t, c_int]),
    "sdk_recv": (c_int, [_client_p, _msg_pp, c_int]),
    "sdk_flush": (c_int, [_client_p, c_int]),
    "sdk_send_seq": (c_int, [_client_p, c_char_p, c_char_p, c_size_t, c_int, POINTER(c_uint64)]),
    "sdk_flush_to": (c_int, [_client_p, c_uint64, c_int]),
    "sdk_retry_cause_name": (c_char_p, [c_int]),
    "sdk_get_state": (c_int, [_client_p]),
    "sdk_get_stats": (c_int, [_client_p, POINTER(sdk_stats)]),
    "sdk_last_error": (c_int, [_client_p, c_char_p, c_size_t]),
    "sdk_current_endpoint": (c_int, [_client_p, POINTER(c_size_t), c_char_p, c_size_t]),
    "sdk_last_connect_error": (c_int, [c_char_p, c_size_t]),
    "sdk_last_call_error": (c_int, [c_char_p, c_size_t]),
    "sdk_close": (c_int, [_client_p]),
    "sdk_destroy": (None, [_client_p]),
    "sdk_cause_name": (c_char_p, [c_int]),
    "sdk_session_event_name": (c_char_p, [c_int]),
    "sdk_session_state_name": (c_char_p, [c_int]),
    "sdk_server_config_init_sized": (c_int, [POINTER(sdk_server_config), c_size_t]),
    "sdk_server_start": (c_int, [POINTER(sdk_server_config), POINTER(_server_p)]),
    "sdk_server_last_start_error": (c_int, [c_char_p, c_size_t]),
    "sdk_server_port": (c_uint16, [_server_p]),
    "sdk_server_recv": (c_int, [_server_p, _msg_pp, c_int]),
    "sdk_server_ack": (c_int, [_server_p, c_uint64, c_uint64]),
    "sdk_server_reply": (c_int, [_server_p, c_uint64, c_uint64, c_char_p, c_char_p, c_size_t, c_int]),
    "sdk_server_send": (c_int, [_server_p, c_uint64, c_char_p, c_size_t, c_int]),
    "sdk_server_send_typed": (c_int, [_server_p, c_uint64, c_char_p, c_char_p, c_size_t, c_int]),
    "sdk_server_close_session": (c_int, [_server_p, c_uint64, c_char_p, c_bool]),
    "sdk_server_sessions": (c_int, [_server_p, POINTER(POINTER(sdk_session_info)), POINTER(c_size_t)]),
    "sdk_sessions_free": (None, [POINTER(sdk_session_info)]),
    "sdk_server_close": (c_int, [_server_p]),
    "sdk_server_destroy": (None, [_server_p]),
    "sdk_dev_certs": (c_int, [c_char_p, c_char_p, c_size_t]),
    "sdk_store_open": (c_int, [c_char_p, c_int, POINTER(c_void_p)]),
    "sdk_store_close": (None, [c_void_p]),
    "sdk_version": (c_char_p, []),
    "sdk_fd": (c_int, [_client_p, POINTER(c_int)]),
    "sdk_server_fd": (c_int, [_server_p, POINTER(c_int)]),
    "sdk_struct_size": (c_size_t, [c_char_p]),
}

for _name, (_restype, _argtypes) in _PROTOTYPES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes

DETAIL_LEN = 1024  # buffer for sdk_last_error / sdk_last_connect_error / sdk_dev_certs


def text(raw: bytes | None) -> str:
    """A C string from the library as str (never fails on odd bytes)."""
    return raw.decode("utf-8", "replace") if raw is not None else ""


def _detail(fn: Any) -> str:
    buf = ctypes.create_string_buffer(DETAIL_LEN)
    fn(buf, DETAIL_LEN)
    return text(buf.value)


def last_connect_error() -> str:
    """sdk_last_connect_error for the calling thread (the one that just failed)."""
    return _detail(lib.sdk_last_connect_error)


def last_call_error() -> str:
    """sdk_last_call_error for the calling thread (e.g. an SDK_ETOOBIG's sizes and limit)."""
    return _detail(lib.sdk_last_call_error)


def last_start_error() -> str:
    """sdk_server_last_start_error for the calling thread (the one that just failed)."""
    return _detail(lib.sdk_server_last_start_error)


def parse_address(address: str) -> tuple[str, int]:
    """sdk_parse_address: "HOST:PORT" or "[IPv6]:PORT" -> (host, port); ValueError if malformed."""
    host = ctypes.create_string_buffer(256)
    port = c_uint16()
    if lib.sdk_parse_address(os.fsencode(address), host, len(host), ctypes.byref(port)) != 0:
        raise ValueError(f"expected HOST:PORT or [IPv6]:PORT, got {address!r}")
    return text(host.value), port.value


def init_config(cfg: Structure) -> None:
    """sdk_config_init / sdk_server_config_init: the C macros pass sizeof; so does this."""
    init = lib.sdk_config_init_sized if isinstance(cfg, sdk_config) else lib.sdk_server_config_init_sized
    rc = init(ctypes.byref(cfg), ctypes.sizeof(cfg))
    if rc != 0:
        raise RuntimeError(f"lifeline: {type(cfg).__name__} init refused ({rc}): the binding does not match the library")
