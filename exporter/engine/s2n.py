"""CloudFront's own TLS library decides: complete handshakes through s2n-tls, as bundled by awscrt.

CloudFront's origin-facing client is s2n-tls with named security policies (`CloudFront-Upstream`
and its `-TLS-1-x` variants). AWS's `awscrt` wheel links s2n-tls statically and exports its C API
from the `_awscrt` extension module, so this module binds that API with `ctypes` and makes the
very handshake CloudFront makes: same library, same policy, same ClientHello.

No socket is ever handed to s2n. s2n reads from and writes to in-memory buffers through custom
I/O callbacks; the asyncio side moves the bytes through the engine's `Endpoint` connection, so
the origin's connection limit, the timeout and the byte budget apply as for every other probe
connection, and the event loop never blocks (s2n does no I/O of its own; its C calls only
compute). See docs/s2n.md for what the bundled s2n can and cannot do, measured.

Errors: anything that happens on the connection is a `CloudFrontHandshake` result (a refused TCP
connect included, as `error="connect_failed"`). The two probe-level limits raise, as they do in
the rest of the engine: `ProbeTimeout` when the handshake takes longer than `endpoint.timeout`
and `BudgetExceeded` when the probe's byte budget is spent. `S2nUnavailable` means there is no
s2n to ask (see `tls_library()`).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import ctypes
import errno
import functools
import hashlib
import importlib
import importlib.metadata
import json
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from tlslite.constants import AlertDescription

from .catalogue import CLOUDFRONT_PROTOCOLS, Protocol
from .errors import BudgetExceeded, ProbeTimeout, ProtocolViolation
from .errors import ConnectError as _ConnectError
from .hello import READ_CHUNK, FlightParser, ReadUntil, ServerHelloInfo, check_connection_bytes
from .names import match_name
from .net import Endpoint, Lease, sni_name

__all__ = [
    "GENERATIONS",
    "POLICIES",
    "CloudFrontHandshake",
    "S2nConfigCache",
    "S2nStream",
    "S2nUnavailable",
    "TlsLibraryInfo",
    "cloudfront_handshake",
    "cloudfront_name_check",
    "policy_for",
    "tls_library",
]

GENERATIONS: tuple[str, ...] = (
    "CloudFront-Upstream",
    "CloudFront-Upstream-2025",
    "CloudFront-Upstream-2025-PQ",
)
"""The policy generations a user may choose; `CloudFront-Upstream` is today's (the default)."""

_SUFFIXES: dict[Protocol, str] = {
    Protocol.SSLv3: "",
    Protocol.TLSv1: "-TLS-1-0",
    Protocol.TLSv1_1: "-TLS-1-1",
    Protocol.TLSv1_2: "-TLS-1-2",
    Protocol.TLSv1_3: "-TLS-1-3",
}


def _policy_name(generation: str, protocol: Protocol) -> str:
    # s2n's names: "CloudFront-Upstream" + "-TLS-1-0", but the 2025 generation puts the
    # protocol before the year: "CloudFront-Upstream" + "-TLS-1-0" + "-2025" (+ "-PQ").
    tail = generation.removeprefix("CloudFront-Upstream")
    return f"CloudFront-Upstream{_SUFFIXES[protocol]}{tail}"


POLICIES: tuple[str, ...] = (
    *(_policy_name("CloudFront-Upstream", p) for p in CLOUDFRONT_PROTOCOLS),
    *(
        _policy_name(generation, p)
        for generation in GENERATIONS[1:]
        for p in (*CLOUDFRONT_PROTOCOLS, Protocol.TLSv1_3)
    ),
)
"""Every CloudFront upstream policy name s2n-tls defines (all 14 exist in awscrt 0.38)."""


def policy_for(protocols: Iterable[Protocol], generation: str = GENERATIONS[0]) -> str:
    """The s2n policy CloudFront uses for an origin: its lowest protocol picks it.

    SSLv3 picks the generation's base policy, TLSv1 its `-TLS-1-0` variant, and so on.
    """
    if generation not in GENERATIONS:
        raise ValueError(f"unknown policy generation {generation!r}: expected one of {GENERATIONS}")
    chosen = set(protocols)
    lowest = next((p for p in (*CLOUDFRONT_PROTOCOLS, Protocol.TLSv1_3) if p in chosen), None)
    if lowest is None:
        raise ValueError("empty protocol list")
    if lowest is Protocol.TLSv1_3 and generation == GENERATIONS[0]:
        raise ValueError(f"{generation} has no TLSv1.3-only policy")
    return _policy_name(generation, lowest)


# --- the library --------------------------------------------------------------------------------


class S2nUnavailable(RuntimeError):
    """There is no usable s2n-tls (awscrt missing, or built without the s2n symbols)."""


@dataclass(frozen=True)
class TlsLibraryInfo:
    """Which TLS library decides; `library` is "none" (with a `reason`) when there is none."""

    library: str  # "s2n-tls" or "none"
    version: str  # awscrt's version ("" when awscrt is not installed)
    source: str  # where the library comes from: "awscrt"
    reason: str | None = None  # why it is unavailable


_S2N_CLIENT = 1
_S2N_SELF_SERVICE_BLINDING = 1
_S2N_BLOCKED_ON_READ = 1
_ERROR_TYPES = ("OK", "IO", "CLOSED", "BLOCKED", "ALERT", "PROTO", "INTERNAL", "USAGE")
_S2N_ERR_T_CLOSED = 2
_S2N_ERR_T_BLOCKED = 3
_S2N_ERR_T_ALERT = 4
_PROTOCOLS = {
    30: Protocol.SSLv3,
    31: Protocol.TLSv1,
    32: Protocol.TLSv1_1,
    33: Protocol.TLSv1_2,
    34: Protocol.TLSv1_3,
}
# s2n's curve names -> OpenSSL's, which the catalogue and the metrics use.
_CURVES = {"secp256r1": "prime256v1", "x25519": "X25519", "secp384r1": "secp384r1"}

_c_int = ctypes.c_int
_c_ptr = ctypes.c_void_p
_c_str = ctypes.c_char_p
_RecvFn = ctypes.CFUNCTYPE(
    _c_int, _c_ptr, ctypes.POINTER(ctypes.c_uint8), ctypes.c_uint32, use_errno=True
)
_SendFn = ctypes.CFUNCTYPE(
    _c_int, _c_ptr, ctypes.POINTER(ctypes.c_uint8), ctypes.c_uint32, use_errno=True
)
_VerifyHostFn = ctypes.CFUNCTYPE(ctypes.c_uint8, _c_ptr, ctypes.c_size_t, _c_ptr)

_PROTOTYPES: tuple[tuple[str, Any, tuple[Any, ...]], ...] = (
    ("s2n_config_new_minimal", _c_ptr, ()),
    ("s2n_config_free", _c_int, (_c_ptr,)),
    ("s2n_config_set_cipher_preferences", _c_int, (_c_ptr, _c_str)),
    ("s2n_config_wipe_trust_store", _c_int, (_c_ptr,)),
    ("s2n_config_add_pem_to_trust_store", _c_int, (_c_ptr, _c_str)),
    ("s2n_cert_chain_and_key_new", _c_ptr, ()),
    ("s2n_cert_chain_and_key_load_pem", _c_int, (_c_ptr, _c_str, _c_str)),
    ("s2n_cert_chain_and_key_free", _c_int, (_c_ptr,)),
    ("s2n_config_add_cert_chain_and_key_to_store", _c_int, (_c_ptr, _c_ptr)),
    ("s2n_connection_new", _c_ptr, (_c_int,)),
    ("s2n_connection_set_config", _c_int, (_c_ptr, _c_ptr)),
    ("s2n_connection_free", _c_int, (_c_ptr,)),
    ("s2n_set_server_name", _c_int, (_c_ptr, _c_str)),
    ("s2n_connection_set_blinding", _c_int, (_c_ptr, _c_int)),
    ("s2n_connection_set_recv_cb", _c_int, (_c_ptr, _RecvFn)),
    ("s2n_connection_set_send_cb", _c_int, (_c_ptr, _SendFn)),
    ("s2n_connection_set_verify_host_callback", _c_int, (_c_ptr, _VerifyHostFn, _c_ptr)),
    ("s2n_negotiate", _c_int, (_c_ptr, ctypes.POINTER(_c_int))),
    ("s2n_send", ctypes.c_ssize_t, (_c_ptr, _c_ptr, ctypes.c_ssize_t, ctypes.POINTER(_c_int))),
    ("s2n_recv", ctypes.c_ssize_t, (_c_ptr, _c_ptr, ctypes.c_ssize_t, ctypes.POINTER(_c_int))),
    ("s2n_connection_get_actual_protocol_version", _c_int, (_c_ptr,)),
    ("s2n_connection_get_server_protocol_version", _c_int, (_c_ptr,)),
    ("s2n_connection_get_cipher", _c_str, (_c_ptr,)),
    ("s2n_connection_get_curve", _c_str, (_c_ptr,)),
    ("s2n_connection_get_kem_group_name", _c_str, (_c_ptr,)),
    ("s2n_connection_get_handshake_type_name", _c_str, (_c_ptr,)),
    ("s2n_connection_client_cert_used", _c_int, (_c_ptr,)),
    ("s2n_connection_get_peer_cert_chain", _c_int, (_c_ptr, _c_ptr)),
    ("s2n_cert_chain_get_length", _c_int, (_c_ptr, ctypes.POINTER(ctypes.c_uint32))),
    ("s2n_cert_chain_get_cert", _c_int, (_c_ptr, ctypes.POINTER(_c_ptr), ctypes.c_uint32)),
    (
        "s2n_cert_get_der",
        _c_int,
        (_c_ptr, ctypes.POINTER(ctypes.POINTER(ctypes.c_uint8)), ctypes.POINTER(ctypes.c_uint32)),
    ),
    ("s2n_connection_get_alert", _c_int, (_c_ptr,)),
    ("s2n_errno_location", ctypes.POINTER(_c_int), ()),
    ("s2n_strerror_name", _c_str, (_c_int,)),
    ("s2n_strerror", _c_str, (_c_int, _c_str)),
    ("s2n_strerror_source", _c_str, (_c_int,)),
    ("s2n_error_get_type", _c_int, (_c_int,)),
)


class _Library:
    """The bound s2n C API plus the configs built on it (one per process, see `_library`)."""

    def __init__(self, dll: ctypes.CDLL, version: str) -> None:
        self.dll = dll
        self.version = version
        self.configs = S2nConfigCache(self)

    def take_errno(self) -> int:
        """s2n_errno (thread-local) of the call that just failed, cleared for the next one."""
        location = self.dll.s2n_errno_location()
        code = int(location[0])
        location[0] = 0
        return code

    def fail(self, call: str) -> S2nError:
        """The s2n error of the call that just failed, with s2n_errno cleared."""
        return S2nError(call, *self.describe(self.take_errno()))

    def describe(self, code: int) -> tuple[str, str, str]:
        """(name, description, type) of an s2n error code."""
        dll = self.dll
        name = _text(dll.s2n_strerror_name(code)) or f"S2N_ERR_{code}"
        detail = _text(dll.s2n_strerror(code, b"EN")) or name
        source = _text(dll.s2n_strerror_source(code))
        if source:
            detail = f"{detail} ({source})"
        kind = int(dll.s2n_error_get_type(code))
        return name, detail, _ERROR_TYPES[kind] if 0 <= kind < len(_ERROR_TYPES) else str(kind)

    def check(self, result: int, call: str) -> None:
        if result != 0:
            raise self.fail(call)


class S2nError(Exception):
    """An s2n call failed in a way the origin did not cause (configuration, resources)."""

    def __init__(self, call: str, name: str, detail: str, kind: str) -> None:
        super().__init__(f"{call}: {name}: {detail}")
        self.name = name
        self.detail = detail
        self.kind = kind


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value is not None else None


def _bind(dll: ctypes.CDLL) -> None:
    """Declare every prototype; AttributeError names the first symbol the library lacks."""
    for name, restype, argtypes in _PROTOTYPES:
        function = getattr(dll, name)
        function.restype = restype
        function.argtypes = argtypes


def _load() -> _Library | str:
    try:
        version = importlib.metadata.version("awscrt")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    try:
        # Importing awscrt.io initialises s2n (s2n_init) and its libcrypto, AWS-LC.
        importlib.import_module("awscrt.io")
        _awscrt = importlib.import_module("_awscrt")
    except ImportError as exc:
        return f"awscrt cannot be imported: {exc}"
    path = getattr(_awscrt, "__file__", None)
    if not path:
        return "awscrt's _awscrt extension has no file to load"
    try:
        dll = ctypes.CDLL(path)
        _bind(dll)
    except OSError as exc:
        return f"cannot load {path}: {exc}"
    except AttributeError as exc:
        return f"{path} does not export the s2n-tls API ({exc})"
    return _Library(dll, version)


@functools.cache
def _library() -> _Library | str:
    """The loaded library, or why there is none; loaded once per process."""
    return _load()


def _require() -> _Library:
    library = _library()
    if isinstance(library, str):
        raise S2nUnavailable(library)
    return library


def tls_library() -> TlsLibraryInfo:
    """Which TLS library makes `cloudfront_handshake`, or why none can."""
    library = _library()
    if isinstance(library, str):
        try:
            version = importlib.metadata.version("awscrt")
        except importlib.metadata.PackageNotFoundError:
            version = ""
        return TlsLibraryInfo("none", version, "awscrt", library)
    return TlsLibraryInfo("s2n-tls", library.version, "awscrt")


# --- configs ------------------------------------------------------------------------------------


class _Config:
    """One `struct s2n_config`, freed once retired and no connection uses it any more."""

    def __init__(self, library: _Library, pointer: int) -> None:
        self.library = library
        self.pointer = pointer
        self.client_chain = 0  # an s2n_cert_chain_and_key the config uses but does not own
        self.users = 0
        self.retired = False

    def free(self) -> None:
        if self.pointer:
            self.library.dll.s2n_config_free(self.pointer)
            self.pointer = 0
        if self.client_chain:
            self.library.dll.s2n_cert_chain_and_key_free(self.client_chain)
            self.client_chain = 0


ConfigKey = tuple[str, str, str]


class S2nConfigCache:
    """s2n configs per (policy, trust bundle digest, client certificate digest), LRU-bounded.

    Building a config parses every trusted root (about 150 for Mozilla's bundle), which costs
    milliseconds; a handshake reuses one. An evicted config is freed when its last connection
    is. The process-wide cache belongs to the loaded library handle; tests may make their own.
    """

    def __init__(self, library: _Library | None = None, size: int = 32) -> None:
        self._library = library
        self._size = size
        self._lock = threading.Lock()
        self._configs: collections.OrderedDict[ConfigKey, _Config] = collections.OrderedDict()
        self.builds = 0  # configs built so far (a cache miss each)

    def acquire(
        self, policy: str, trust_pem: bytes, client_certificate: tuple[bytes, bytes] | None
    ) -> _Config:
        library = self._library or _require()
        key = (policy, _digest(trust_pem), _digest(b"\0".join(client_certificate or ())))
        with self._lock:
            config = self._configs.get(key)
            if config is not None:
                self._configs.move_to_end(key)
                config.users += 1
                return config
        built = _build_config(library, policy, trust_pem, client_certificate)
        with self._lock:
            self.builds += 1
            config = self._configs.get(key)
            if config is None:
                config = self._configs[key] = built
            else:  # another thread built the same one meanwhile
                built.free()
            config.users += 1
            while len(self._configs) > self._size:
                _, old = self._configs.popitem(last=False)
                old.retired = True
                if old.users == 0:
                    old.free()
            return config

    def release(self, config: _Config) -> None:
        with self._lock:
            config.users -= 1
            if config.retired and config.users == 0:
                config.free()

    def clear(self) -> None:
        """Free every config no connection uses; the others when their connections end."""
        with self._lock:
            for config in self._configs.values():
                config.retired = True
                if config.users == 0:
                    config.free()
            self._configs.clear()

    def __len__(self) -> int:
        return len(self._configs)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _build_config(
    library: _Library, policy: str, trust_pem: bytes, client_certificate: tuple[bytes, bytes] | None
) -> _Config:
    dll = library.dll
    pointer = dll.s2n_config_new_minimal()
    if not pointer:
        raise library.fail("s2n_config_new_minimal")
    config = _Config(library, pointer)
    try:
        if dll.s2n_config_set_cipher_preferences(pointer, policy.encode()) != 0:
            error = library.fail("s2n_config_set_cipher_preferences")
            raise ValueError(f"s2n does not know the policy {policy!r}: {error.name}")
        library.check(dll.s2n_config_wipe_trust_store(pointer), "s2n_config_wipe_trust_store")
        if trust_pem.strip():
            if b"\0" in trust_pem:
                raise ValueError("the trust bundle contains a NUL byte")
            library.check(
                dll.s2n_config_add_pem_to_trust_store(pointer, trust_pem),
                "s2n_config_add_pem_to_trust_store",
            )
        if client_certificate is not None:
            config.client_chain = _add_client_certificate(library, pointer, *client_certificate)
    except BaseException:
        config.free()
        raise
    return config


def _add_client_certificate(library: _Library, config: int, chain: bytes, key: bytes) -> int:
    """Load the client certificate; the caller frees the returned chain after the config."""
    dll = library.dll
    if b"\0" in chain or b"\0" in key:
        raise ValueError("the client certificate or key contains a NUL byte")
    chain_and_key: int | None = dll.s2n_cert_chain_and_key_new()
    if not chain_and_key:
        raise library.fail("s2n_cert_chain_and_key_new")
    try:
        library.check(
            dll.s2n_cert_chain_and_key_load_pem(chain_and_key, chain, key),
            "s2n_cert_chain_and_key_load_pem",
        )
        library.check(
            dll.s2n_config_add_cert_chain_and_key_to_store(config, chain_and_key),
            "s2n_config_add_cert_chain_and_key_to_store",
        )
    except BaseException:
        dll.s2n_cert_chain_and_key_free(chain_and_key)
        raise
    return chain_and_key


# --- the handshake ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudFrontHandshake:
    """One complete handshake as CloudFront's s2n-tls makes it, and what s2n decided.

    `peer_chain` is the Certificate message exactly as the origin sent it, read off the wire:
    visible under SSLv3 to TLSv1.2 only (TLSv1.3 encrypts it). `validated_chain` is the path s2n
    built and accepted (from the leaf up to the trusted certificate), after a completed handshake.
    `error` is s2n's error name (`S2N_ERR_CERT_UNTRUSTED`, ...) or, before s2n could run,
    `connect_failed`; `alert` is the alert the origin sent, if any.
    """

    library: str
    policy: str
    completed: bool
    protocol: Protocol | None = None
    cipher: str | None = None  # OpenSSL name, as in the catalogue
    group: str | None = None  # OpenSSL curve name, or s2n's hybrid group name (X25519MLKEM768)
    peer_chain: tuple[bytes, ...] = ()
    validated_chain: tuple[bytes, ...] = ()
    error: str | None = None
    error_type: str | None = None  # s2n_error_get_type: ALERT, PROTO, CLOSED, IO, ...
    error_detail: str | None = None
    alert: int | None = None
    client_certificate_requested: bool = False
    client_certificate_sent: bool = False
    certificate_names: tuple[str, ...] = ()  # the names s2n gave the verify-host callback
    client_hello: bytes = b""  # the ClientHello handshake message s2n sent
    duration_seconds: float = 0.0
    bytes_read: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["protocol"] = self.protocol.value if self.protocol else None
        data["peer_chain"] = [_b64(der) for der in self.peer_chain]
        data["validated_chain"] = [_b64(der) for der in self.validated_chain]
        data["certificate_names"] = list(self.certificate_names)
        data["client_hello"] = _b64(self.client_hello)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CloudFrontHandshake:
        values = dict(data)
        protocol = values.get("protocol")
        values["protocol"] = Protocol(protocol) if protocol else None
        for key in ("peer_chain", "validated_chain"):
            values[key] = tuple(base64.b64decode(item) for item in values.get(key, ()))
        values["certificate_names"] = tuple(values.get("certificate_names", ()))
        values["client_hello"] = base64.b64decode(values.get("client_hello", ""))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> CloudFrontHandshake:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a CloudFrontHandshake is a JSON object")
        return cls.from_dict(data)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def cloudfront_name_check(name: str) -> Callable[[str], bool]:
    """CloudFront's name rule (`names.match_name`) for one presented name: DNS or IP SAN or CN.

    s2n hands the callback each identifier as text without saying what it is, so each is tried
    as a DNS name and as an IP address; `match_name` never lets a DNS name match an address.
    """

    def check(presented: str) -> bool:
        return match_name(name, [presented], [presented], []).ok

    return check


async def cloudfront_handshake(
    endpoint: Endpoint,
    policy: str,
    server_name: str | None,
    trust_pem: bytes,
    name_check: Callable[[str], bool] | None,
    client_certificate: tuple[bytes, bytes] | None = None,
    *,
    common_name_fallback: bool = True,
    configs: S2nConfigCache | None = None,
    after: AfterHandshake | None = None,
    warm: bool = True,
) -> CloudFrontHandshake:
    """Make CloudFront's handshake to `endpoint` with s2n-tls under `policy`.

    `server_name` is the SNI (IP literals send none, as CloudFront does); `trust_pem` the PEM
    bundle CloudFront trusts; `name_check` decides whether one name presented by the certificate
    matches (None: names are not checked; see `cloudfront_name_check`); `client_certificate` is
    (chain PEM, key PEM) for origin mutual TLS. With `common_name_fallback`, a certificate whose
    SANs do not match is also accepted when its subject CN matches, as CloudFront documents; s2n
    itself offers the CN only when there is no SAN, and the CN can be read here only when the
    certificate travelled in the clear (up to TLSv1.2).

    `after` is awaited with the outcome before the connection closes, and with the connection
    itself (an `S2nStream`) when the handshake completed: CloudFront forwards its request there.
    `warm`: see `Endpoint.lease`.

    Returns the outcome; raises `ProbeTimeout`, `BudgetExceeded` (probe-level limits, as the rest
    of the engine does), `ValueError` for a policy s2n does not know, `S2nUnavailable`.
    """
    library = _require()
    cache = configs if configs is not None else library.configs
    config = cache.acquire(policy, trust_pem, client_certificate)
    try:
        session = _Session(library, policy, server_name, name_check, common_name_fallback)
        return await session.run(endpoint, config.pointer, after, warm)
    finally:
        cache.release(config)


_MAX_NAMES = 64


class _Session:
    """One s2n client connection whose I/O goes through in-memory buffers."""

    def __init__(
        self,
        library: _Library,
        policy: str,
        server_name: str | None,
        name_check: Callable[[str], bool] | None,
        common_name_fallback: bool,
    ) -> None:
        self.library = library
        self.policy = policy
        self.sni = sni_name(server_name)
        self.name_check = name_check
        self.common_name_fallback = common_name_fallback
        self.incoming = bytearray()  # read from the origin, not yet taken by s2n
        self.outgoing = bytearray()  # written by s2n, not yet sent
        self.eof = False
        self.closed_detail: str | None = None
        self.sent_first_flight = False
        self.first_flight = bytearray()
        self.bytes_read = 0
        self.names: list[str] = []
        self.cn_tried = False
        self.observer: FlightParser | None = FlightParser(ReadUntil.SERVER_HELLO_DONE)
        self.wire_chain: tuple[bytes, ...] = ()
        # The callbacks must live as long as the connection: they are attributes of the session.
        self.recv_fn = _RecvFn(self._recv)
        self.send_fn = _SendFn(self._send)
        self.verify_host_fn = _VerifyHostFn(self._verify_host)

    # The three callbacks run inside s2n's C calls: they must never raise.

    def _recv(self, _context: int | None, buffer: Any, length: int) -> int:
        try:
            if not self.incoming:
                if self.eof:
                    return 0
                ctypes.set_errno(errno.EAGAIN)
                return -1
            size = min(length, len(self.incoming))
            ctypes.memmove(buffer, bytes(self.incoming[:size]), size)
            del self.incoming[:size]
            return size
        except Exception:
            ctypes.set_errno(errno.EIO)
            return -1

    def _send(self, _context: int | None, buffer: Any, length: int) -> int:
        try:
            data = ctypes.string_at(buffer, length)
            self.outgoing += data
            if not self.sent_first_flight:
                self.first_flight += data
            return length
        except Exception:
            ctypes.set_errno(errno.EIO)
            return -1

    def _verify_host(self, name: int | None, length: int, _data: int | None) -> int:
        try:
            presented = ctypes.string_at(name, length).decode("utf-8", "replace") if name else ""
            if len(self.names) < _MAX_NAMES:
                self.names.append(presented)
            if self.name_check is None or self.name_check(presented):
                return 1
            if self.common_name_fallback and not self.cn_tried:
                self.cn_tried = True
                return int(any(self.name_check(cn) for cn in _leaf_common_names(self.wire_chain)))
            return 0
        except Exception:
            return 0

    async def run(
        self,
        endpoint: Endpoint,
        config: int,
        after: AfterHandshake | None = None,
        warm: bool = True,
    ) -> CloudFrontHandshake:
        started = time.monotonic()
        try:
            async with endpoint.lease(warm) as lease:
                conn = self._open(config)
                try:
                    try:
                        async with asyncio.timeout(endpoint.timeout):
                            outcome = await self._negotiate(
                                conn, lease.reader, lease.writer, endpoint
                            )
                    except TimeoutError:
                        raise ProbeTimeout(
                            f"s2n handshake ({self.policy}) with {endpoint.display} did not "
                            f"finish within {endpoint.timeout:g}s"
                        ) from None
                    result = self._result(conn, outcome, time.monotonic() - started)
                    if after is not None:
                        stream = (
                            S2nStream(self, conn, lease, endpoint) if result.completed else None
                        )
                        await after(result, stream)
                    return result
                finally:
                    self.library.dll.s2n_connection_free(conn)
        except _ConnectError as exc:
            result = CloudFrontHandshake(
                library=_library_label(self.library),
                policy=self.policy,
                completed=False,
                error=exc.reason,
                error_detail=str(exc),
                duration_seconds=time.monotonic() - started,
            )
            if after is not None:
                await after(result, None)
            return result

    def _open(self, config: int) -> int:
        library = self.library
        dll = library.dll
        conn: int | None = dll.s2n_connection_new(_S2N_CLIENT)
        if not conn:
            raise library.fail("s2n_connection_new")
        try:
            library.check(dll.s2n_connection_set_config(conn, config), "s2n_connection_set_config")
            # Without self-service blinding s2n sleeps 10-30 s after every failure.
            library.check(
                dll.s2n_connection_set_blinding(conn, _S2N_SELF_SERVICE_BLINDING),
                "s2n_connection_set_blinding",
            )
            library.check(dll.s2n_connection_set_recv_cb(conn, self.recv_fn), "set_recv_cb")
            library.check(dll.s2n_connection_set_send_cb(conn, self.send_fn), "set_send_cb")
            library.check(
                dll.s2n_connection_set_verify_host_callback(conn, self.verify_host_fn, None),
                "s2n_connection_set_verify_host_callback",
            )
            if self.sni is not None:
                library.check(dll.s2n_set_server_name(conn, self.sni.encode()), "set_server_name")
        except BaseException:
            dll.s2n_connection_free(conn)
            raise
        return conn

    async def _negotiate(
        self,
        conn: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        endpoint: Endpoint,
    ) -> tuple[str, str, str] | None:
        """Drive s2n_negotiate to its end: None when complete, else s2n's error."""
        dll = self.library.dll
        blocked = ctypes.c_int(0)
        location = dll.s2n_errno_location()
        while True:
            status = int(dll.s2n_negotiate(conn, ctypes.byref(blocked)))
            code = int(location[0]) if status != 0 else 0
            location[0] = 0
            await self._flush(writer)
            if status == 0:
                return None
            kind = int(dll.s2n_error_get_type(code))
            if kind != _S2N_ERR_T_BLOCKED or blocked.value != _S2N_BLOCKED_ON_READ:
                return self.library.describe(code)
            self.sent_first_flight = True
            if not await self._read(reader, endpoint):
                return "connection_bytes_exceeded", "the origin sent too many bytes", "PROTO"

    async def _flush(self, writer: asyncio.StreamWriter) -> None:
        if not self.outgoing or self.eof:
            self.outgoing.clear()
            return
        data = bytes(self.outgoing)
        self.outgoing.clear()
        try:
            writer.write(data)
            await writer.drain()
        except ConnectionError as exc:
            self.eof = True
            self.closed_detail = f"the origin closed the connection: {exc}"
        except RuntimeError as exc:  # uvloop: the transport a reset already closed
            if not writer.transport.is_closing():
                raise
            self.eof = True
            self.closed_detail = f"the origin closed the connection: {exc}"

    async def _read(self, reader: asyncio.StreamReader, endpoint: Endpoint) -> bool:
        """Move the next bytes from the origin to s2n; False past the per-connection cap."""
        if self.eof:
            return True
        try:
            data = await reader.read(READ_CHUNK)
        except ConnectionError as exc:
            data = b""
            self.closed_detail = f"the origin reset the connection: {exc}"
        if not data:
            self.eof = True
            return True
        self.bytes_read += len(data)
        endpoint.charge(len(data))  # BudgetExceeded stops the probe
        try:
            check_connection_bytes(self.bytes_read)
        except BudgetExceeded:
            raise
        except ProtocolViolation:
            return False
        self.incoming += data
        self._observe(data)
        return True

    def _observe(self, data: bytes) -> None:
        """Read the certificates off the wire as sent (TLS 1.2 and older send them in clear)."""
        if self.observer is None:
            return
        try:
            answer = self.observer.feed(data)
        except Exception:  # NotTLSError, ProtocolViolation: s2n will say what it makes of it
            self.observer = None
            return
        if answer is not None:
            if isinstance(answer, ServerHelloInfo):
                self.wire_chain = answer.certificates
            self.observer = None

    def _result(
        self, conn: int, failure: tuple[str, str, str] | None, duration: float
    ) -> CloudFrontHandshake:
        dll = self.library.dll
        completed = failure is None
        version = int(dll.s2n_connection_get_server_protocol_version(conn))
        if completed:
            version = int(dll.s2n_connection_get_actual_protocol_version(conn))
        protocol = _PROTOCOLS.get(version)
        cipher = _text(dll.s2n_connection_get_cipher(conn))
        if cipher in (None, "TLS_NULL_WITH_NULL_NULL") or protocol is None:
            cipher = None
        kem_group = _text(dll.s2n_connection_get_kem_group_name(conn))
        curve = _text(dll.s2n_connection_get_curve(conn))
        group = None
        if kem_group and kem_group != "NONE":
            group = kem_group
        elif curve and curve != "NONE" and protocol is not None:
            group = _CURVES.get(curve, curve)
        handshake_type = _text(dll.s2n_connection_get_handshake_type_name(conn)) or ""
        alert = int(dll.s2n_connection_get_alert(conn))
        sent_certificate = completed and int(dll.s2n_connection_client_cert_used(conn)) == 1
        validated = self._validated_chain(conn) if completed else ()
        dll.s2n_errno_location()[0] = 0  # the getters above may leave S2N_ERR_NO_ALERT & co
        error = detail = kind = None
        if failure is not None:
            error, detail, kind = failure
            if self.closed_detail and kind in ("CLOSED", "IO"):
                detail = f"{detail}; {self.closed_detail}"
        return CloudFrontHandshake(
            library=_library_label(self.library),
            policy=self.policy,
            completed=completed,
            protocol=protocol,
            cipher=cipher,
            group=group,
            peer_chain=self.wire_chain,
            validated_chain=validated,
            error=error,
            error_type=kind,
            error_detail=detail,
            alert=alert if alert >= 0 else None,
            client_certificate_requested="CLIENT_AUTH" in handshake_type.split("|"),
            client_certificate_sent=sent_certificate,
            certificate_names=tuple(self.names),
            client_hello=_client_hello_message(bytes(self.first_flight)),
            duration_seconds=duration,
            bytes_read=self.bytes_read,
        )

    def _validated_chain(self, conn: int) -> tuple[bytes, ...]:
        dll = self.library.dll
        chain = dll.s2n_cert_chain_and_key_new()
        if not chain:
            return ()
        try:
            if dll.s2n_connection_get_peer_cert_chain(conn, chain) != 0:
                return ()
            count = ctypes.c_uint32(0)
            if dll.s2n_cert_chain_get_length(chain, ctypes.byref(count)) != 0:
                return ()
            ders: list[bytes] = []
            for index in range(count.value):
                cert = ctypes.c_void_p()
                der = ctypes.POINTER(ctypes.c_uint8)()
                size = ctypes.c_uint32(0)
                if dll.s2n_cert_chain_get_cert(chain, ctypes.byref(cert), index) != 0:
                    break
                if dll.s2n_cert_get_der(cert, ctypes.byref(der), ctypes.byref(size)) != 0:
                    break
                ders.append(ctypes.string_at(der, size.value))
            return tuple(ders)
        finally:
            dll.s2n_cert_chain_and_key_free(chain)


class S2nStream:
    """Application data over a completed s2n-tls connection, shaped like the asyncio reader and
    writer the request code uses: `read`, `write`, `drain`, `transport`."""

    def __init__(self, session: _Session, conn: int, lease: Lease, endpoint: Endpoint) -> None:
        self._session = session
        self._conn = conn
        self._lease = lease
        self._endpoint = endpoint
        self._dll = session.library.dll

    @property
    def transport(self) -> asyncio.BaseTransport:
        return self._lease.writer.transport

    def release_slot(self) -> None:
        """The response is in; the idle connection no longer counts against the limit."""
        self._lease.release_slot()

    def write(self, data: bytes) -> None:
        """Encrypt `data` into s2n's outgoing buffer (never blocks: the buffer is memory)."""
        blocked = ctypes.c_int(0)
        view = ctypes.create_string_buffer(data, len(data))
        offset = 0
        while offset < len(data):
            sent = int(
                self._dll.s2n_send(
                    self._conn,
                    ctypes.byref(view, offset),
                    len(data) - offset,
                    ctypes.byref(blocked),
                )
            )
            if sent < 0:
                raise self._failure()
            offset += sent

    async def drain(self) -> None:
        await self._session._flush(self._lease.writer)
        if self._session.eof:
            raise ConnectionResetError(self._session.closed_detail or "the origin closed")

    async def read(self, size: int = READ_CHUNK, /) -> bytes:
        """Up to `size` decrypted bytes; b"" once the origin closed (with or without a
        close_notify, both an ordinary close to CloudFront)."""
        buffer = ctypes.create_string_buffer(size)
        blocked = ctypes.c_int(0)
        session = self._session
        while True:
            got = int(self._dll.s2n_recv(self._conn, buffer, size, ctypes.byref(blocked)))
            await session._flush(self._lease.writer)  # alerts, key updates
            if got > 0:
                return buffer.raw[:got]
            if got == 0:
                return b""
            code = self._session.library.take_errno()
            kind = int(self._dll.s2n_error_get_type(code))
            if kind == _S2N_ERR_T_BLOCKED and blocked.value == _S2N_BLOCKED_ON_READ:
                if not await self._pull():
                    return b""
                continue
            if kind == _S2N_ERR_T_CLOSED:
                return b""
            raise self._failure(code)

    async def _pull(self) -> bool:
        """Move the origin's next bytes to s2n; False at the end of the stream."""
        session = self._session
        if session.eof:
            return False
        try:
            data = await self._lease.reader.read(READ_CHUNK)
        except ConnectionError:
            data = b""
        if not data:
            session.eof = True
            return True  # s2n sees the end through its recv callback and says how it ends
        self._endpoint.charge(len(data))  # the request caps its own bytes; this is the budget
        session.incoming += data
        return True

    def _failure(self, code: int | None = None) -> ssl.SSLError:
        """s2n's error as the `ssl.SSLError` the request code reports as a TLS failure."""
        dll = self._dll
        library = self._session.library
        if code is None:
            code = library.take_errno()
        name, detail, _ = library.describe(code)
        if int(dll.s2n_error_get_type(code)) == _S2N_ERR_T_ALERT:
            alert = int(dll.s2n_connection_get_alert(self._conn))
            if alert >= 0:
                detail = f"received alert {AlertDescription.toStr(alert)} ({alert})"
        return ssl.SSLError(1, f"s2n-tls {name}: {detail}")


AfterHandshake = Callable[[CloudFrontHandshake, S2nStream | None], Awaitable[None]]


def _library_label(library: _Library) -> str:
    """The `library` label value; its version is on `origin_tls_exporter_tls_library_info`."""
    return "s2n-tls"


def _leaf_common_names(chain: tuple[bytes, ...]) -> tuple[str, ...]:
    if not chain:
        return ()
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        leaf = x509.load_der_x509_certificate(chain[0])
        attributes = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return ()
    return tuple(str(a.value) for a in attributes)


def _client_hello_message(flight: bytes) -> bytes:
    """The first handshake message (type, length, body) carried in `flight`'s records."""
    handshake = bytearray()
    offset = 0
    while offset + 5 <= len(flight):
        content_type = flight[offset]
        length = int.from_bytes(flight[offset + 3 : offset + 5], "big")
        if content_type == 22:
            handshake += flight[offset + 5 : offset + 5 + length]
        offset += 5 + length
    if len(handshake) < 4 or handshake[0] != 1:
        return b""
    return bytes(handshake[: 4 + int.from_bytes(handshake[1:4], "big")])
