"""One HTTP exchange with a server, bounded in time and in size.

Every request to a ComfyUI server goes through :func:`exchange`. It has a *total* deadline (a
monotonic time): connecting, sending, the status line, the headers and the whole body must be done
by then, so a server that sends one byte every few seconds cannot keep the client waiting - a
watchdog shuts the socket when the deadline passes. The body is capped (``max_bytes``): a JSON
answer is read into memory only up to the cap, a download is streamed to a file (``sink``) and never
held in memory. :meth:`Exchanges.abort` closes every exchange in flight at once (Ctrl-C).

Errors: :class:`ServerDown` (no answer: the job may run elsewhere) and its subclass
:class:`ServerDropped` (the server drips, or sends an answer larger than the cap: it is not used again);
both are :class:`~.prompt.RenderError` with a one-line message.
"""
from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse
from typing import BinaryIO

from .prompt import RenderError

__all__ = ["ServerDown", "ServerDropped", "TooLarge", "MiB", "DEFAULT_MAX_RESPONSE_MB", "DEFAULT_MAX_DOWNLOAD_MB",
           "Exchanges", "exchange"]

MiB = 1 << 20
DEFAULT_MAX_RESPONSE_MB = 64       # JSON answers (/object_info, /history, /prompt, /upload): --max-response
DEFAULT_MAX_DOWNLOAD_MB = 4096     # one downloaded result file: --max-download
ERROR_BODY = 4096                  # bytes of an HTTP error's body kept for the message
CHUNK = 1 << 16


class ServerDown(RenderError):
    """The server cannot be reached or stopped answering (the job may be run again elsewhere)."""


class ServerDropped(ServerDown):
    """The server answered too slowly (dripping) or too much; it is dropped at once."""


class TooLarge(RenderError):
    """A result file is larger than ``--max-download``."""


class Exchanges:
    """The connections of one client that are in flight, so :meth:`abort` can close them all."""

    def __init__(self):
        self._lock, self._open, self.aborted = threading.Lock(), set(), False

    def add(self, conn) -> None:
        with self._lock:
            if self.aborted:
                raise ServerDown("interrupted")
            self._open.add(conn)

    def discard(self, conn) -> None:
        with self._lock:
            self._open.discard(conn)

    def abort(self) -> None:
        """Close every connection in flight now; later exchanges fail at once."""
        with self._lock:
            self.aborted, conns = True, list(self._open)
        for conn in conns:
            _shut(conn)


def _shut(conn) -> None:
    sock = getattr(conn, "sock", None)
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def exchange(base: str, path: str, *, deadline: float, max_bytes: int, data: bytes | None = None,
             headers: dict | None = None, sink: BinaryIO | None = None, what: str = "",
             registry: Exchanges | None = None, stall: float = 30.0, limit: str = "") -> tuple[int, bytes]:
    """``(status, body)`` of one request to ``base + path``, done by ``deadline`` (``time.monotonic()``).

    Args:
        base: ``http://host:port`` (or https).
        deadline: monotonic time by which the whole answer must have arrived.
        max_bytes: the most body bytes accepted (a larger ``Content-Length`` is refused before reading).
        data: request body (POST), else GET.
        sink: a binary file the body is streamed into (then ``body`` is ``b""``); only for status 200.
        what: names the body in messages (``"result file x.png"``); default the path.
        registry: connections in flight, for :meth:`Exchanges.abort`.
        limit: what sets the deadline, for the message (e.g. ``"--timeout 20 s"``).
        stall: seconds one read may wait for a single byte.

    Raises:
        ServerDown: cannot connect, connection reset, or aborted.
        ServerDropped: the deadline passed (the server drips), or a JSON answer is larger than ``max_bytes``.
        TooLarge: a ``sink`` download is larger than ``max_bytes``.
    """
    parts = urllib.parse.urlsplit(base)
    what = what or f"{base}{path.split('?')[0]}"
    budget = deadline - time.monotonic()
    if budget <= 0:
        raise ServerDropped(f"{what}: no time left for the request")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname, parts.port, timeout=max(0.05, min(budget, stall)))
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        _shut(conn)

    watchdog = threading.Timer(budget, expire)
    watchdog.daemon = True
    if registry is not None:
        registry.add(conn)
    watchdog.start()
    try:
        conn.request("POST" if data is not None else "GET", path, body=data, headers=headers or {})
        resp = conn.getresponse()
        if resp.status != 200:
            return resp.status, resp.read(ERROR_BODY)
        length = resp.getheader("Content-Length")
        if length and length.strip().isdigit() and int(length) > max_bytes:
            _too_large(what, max_bytes, sink, f"{int(length) / MiB:.0f} MiB")
        return 200, _body(resp, max_bytes, sink, what)
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise ServerDropped(f"{what}: no complete answer within {limit or f'{budget:.0f} s'} (a server that "
                                "answers this slowly is treated as down)") from None
        if registry is not None and registry.aborted:
            raise ServerDown("interrupted") from None
        raise ServerDown(f"cannot reach ComfyUI at {base}: {getattr(exc, 'reason', None) or exc}") from None
    finally:
        watchdog.cancel()
        if registry is not None:
            registry.discard(conn)
        conn.close()


def _body(resp, max_bytes: int, sink, what: str) -> bytes:
    chunks, total = [], 0
    while chunk := resp.read(CHUNK):
        total += len(chunk)
        if total > max_bytes:
            _too_large(what, max_bytes, sink, f"more than {max_bytes / MiB:.0f} MiB")
        if sink is None:
            chunks.append(chunk)
        else:
            sink.write(chunk)
    return b"".join(chunks)


def _too_large(what: str, max_bytes: int, sink, size: str) -> None:
    limit = f"{max_bytes / MiB:g} MiB"
    if sink is None:
        raise ServerDropped(f"{what}: the server sends {size}, above the {limit} limit for an answer "
                            "(--max-response); not a usable ComfyUI server")
    raise TooLarge(f"{what}: the server sends {size}, above the {limit} limit for a result file "
                   "(raise --max-download to accept it)")
