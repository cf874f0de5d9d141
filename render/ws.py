"""A minimal WebSocket client (RFC 6455), enough to read ComfyUI's ``/ws`` progress messages.

Standard library only: the pack adds no dependency for it. Text frames are returned as parsed JSON;
binary frames (preview images) are skipped; pings are answered. The handshake must be done within
``timeout`` seconds in all, a frame larger than ``max_frame`` bytes closes the connection, and
:meth:`WebSocket.receive` returns within its ``timeout`` even when a frame arrives a byte at a time.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import urllib.parse

__all__ = ["WebSocket"]


class WebSocket:
    """Connection to ``ws://host:port/path``; :meth:`receive` returns the next JSON message or None on timeout."""

    def __init__(self, url: str, *, timeout: float = 10.0, max_frame: int = 64 << 20):
        parts, end = urllib.parse.urlsplit(url), time.monotonic() + timeout
        self.max_frame = max_frame
        if parts.scheme != "ws":
            raise OSError(f"{url}: only ws:// is supported")
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            if time.monotonic() > end or len(head) > 65536:
                self.sock.close()
                raise OSError(f"{url}: no WebSocket handshake within {timeout:g} s")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError(f"{url}: connection closed during the WebSocket handshake")
            head += chunk
        head, _, self._buffer = head.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        if " 101 " not in status:
            raise OSError(f"{url}: no WebSocket here ({status})")

    def _parse(self):
        """``(fin, opcode, payload)`` of the first complete frame in the buffer (consumed), else None."""
        buf = self._buffer
        if len(buf) < 2:
            return None
        length, pos = buf[1] & 0x7F, 2
        if length >= 126:
            size = 2 if length == 126 else 8
            if len(buf) < pos + size:
                return None
            length, pos = int.from_bytes(buf[pos:pos + size], "big"), pos + size
        if length > self.max_frame:
            raise ConnectionError(f"a WebSocket frame of {length} bytes (more than {self.max_frame})")
        mask = None
        if buf[1] & 0x80:
            mask, pos = buf[pos:pos + 4], pos + 4
        if len(buf) < pos + length:
            return None
        data, self._buffer = buf[pos:pos + length], buf[pos + length:]
        if mask:
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
        return bool(buf[0] & 0x80), buf[0] & 0x0F, data

    def _frame(self, end: float) -> tuple[bool, int, bytes]:
        while (frame := self._parse()) is None:
            if time.monotonic() > end:
                raise socket.timeout
            chunk = self.sock.recv(65536)   # a timeout here leaves the buffer intact
            if not chunk:
                raise ConnectionError("the server closed the WebSocket")
            self._buffer += chunk
        return frame

    def _send(self, opcode: int, data: bytes) -> None:
        mask = os.urandom(4)
        head = bytes([0x80 | opcode])
        n = len(data)
        head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
        self.sock.sendall(head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(data)))

    def receive(self, timeout: float) -> dict | None:
        """Next JSON text message, None when nothing arrived within ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        message, opcode0, end = b"", None, time.monotonic() + timeout
        try:
            while True:
                if len(message) > self.max_frame:
                    raise ConnectionError(f"a WebSocket message of more than {self.max_frame} bytes")
                fin, opcode, data = self._frame(end)
                if opcode == 9:
                    self._send(10, data)
                    continue
                if opcode == 8:
                    raise ConnectionError("the server closed the WebSocket")
                if opcode in (1, 2):
                    opcode0, message = opcode, data
                elif opcode == 0:
                    message += data
                if opcode in (0, 1, 2) and fin:
                    break
        except socket.timeout:
            return None
        if opcode0 != 1:
            return {}
        try:
            return json.loads(message.decode("utf-8"))
        except ValueError:
            return {}

    def close(self) -> None:
        try:
            self._send(8, b"")
        except OSError:
            pass
        self.sock.close()
