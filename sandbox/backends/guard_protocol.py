"""The pool's side of the guard's wire protocol (the guard's side is container_guard.py, whose constants this uses).

Over a container's attach socket the pool writes one line, ``<nonce> <key> <length>``, then the runner's job.
What comes back is Docker's non-tty attach stream: frames of an 8-byte header (stream id, payload size) and the
payload. On stdout the guard writes ``IPSB1 ready`` once its runner has started, later its answer:
``IPSB1 <nonce> <ok|exit status> <length> <mac>`` and ``length`` bytes of the runner's stdout, trusted only if
``mac`` is HMAC-SHA256 under our key of ``<status> <body>``. Everything else on stdout was written by something
else in the container.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Optional

from sandbox.backends.container_guard import HEADER, READY, sign


def job_message(job: bytes, again: bool) -> tuple[bytes, bytes, bytes]:
    """(nonce, key, what to write to the guard) for one job; nonce and key are fresh for every job. ``again``
    tells the guard to reset the container for another job after this one (else it exits after answering)."""
    nonce, key = secrets.token_hex(16).encode(), secrets.token_hex(32).encode()
    return nonce, key, b"%s %s %d %d\n%s" % (nonce, key, len(job), int(again), job)


class AttachStream:
    """Demultiplexes Docker's non-tty attach stream, however it is chunked: stdout payloads go to ``_stdout``
    (which keeps them all), stderr keeps only its tail (all that is ever reported)."""

    _FRAME = struct.Struct(">BxxxL")
    STDERR_TAIL = 4096

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.stdout = bytearray()
        self.stderr = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= self._FRAME.size:
            stream, size = self._FRAME.unpack_from(self._buffer)
            end = self._FRAME.size + size
            if len(self._buffer) < end:
                return
            data = bytes(self._buffer[self._FRAME.size : end])
            del self._buffer[:end]
            if stream == 2:
                self.stderr += data
                del self.stderr[: max(0, len(self.stderr) - self.STDERR_TAIL)]
            else:
                self._stdout(data)

    @property
    def partial(self) -> bool:
        """Whether part of a frame is still waiting for the rest of it."""
        return bool(self._buffer)

    def _stdout(self, data: bytes) -> None:
        self.stdout += data


class FrameReader(AttachStream):
    """Finds the guard's answer to the job sent with ``nonce`` and ``key`` in the attach stream."""

    _KEEP_SCANNING = 256  # bytes kept while looking for the header; more than a header line

    def __init__(self, nonce: bytes, key: bytes) -> None:
        super().__init__()
        self._marker = HEADER + b" " + nonce + b" "
        self._key = key
        self._mac = b""
        self._status = b""
        self.forged = False  # a header with our nonce whose MAC did not check out
        self.foreign_bytes = 0
        self._body_start: Optional[int] = None
        self.runner_exit: Optional[int] = None
        self._length = 0

    def _stdout(self, data: bytes) -> None:
        self.stdout += data
        if self._body_start is not None:
            return
        at = self.stdout.find(self._marker)
        newline = self.stdout.find(b"\n", at) if at >= 0 else -1
        if at < 0 or newline < 0:
            # Keep memory bounded whatever a candidate floods the stream with.
            drop = max(0, len(self.stdout) - self._KEEP_SCANNING)
            self.foreign_bytes += drop
            del self.stdout[:drop]
            return
        try:
            status_text, length_text, mac = self.stdout[at + len(self._marker) : newline].split()
            self.runner_exit = 0 if status_text == b"ok" else int(status_text)
            self._length, self._status, self._mac = int(length_text), bytes(status_text), bytes(mac)
        except ValueError:
            return
        self.foreign_bytes += at
        del self.stdout[: newline + 1]
        self._body_start = 0

    def done(self) -> bool:
        return self._body_start is not None and len(self.stdout) >= self._length

    def rest(self) -> AttachStream:
        """What arrived after the answer (the start of the guard's next ready line, perhaps), as a stream that
        goes on demultiplexing from here."""
        stream = AttachStream()
        stream._buffer = bytearray(self._buffer)
        stream.stdout = bytearray(self.stdout[self._length :]) if self.done() else bytearray()
        return stream

    def answer(self) -> tuple[Optional[int], bytes]:
        """(runner exit status, runner stdout) once complete and authentic; (None, b"") otherwise."""
        if not self.done():
            return None, b""
        body = bytes(self.stdout[: self._length])
        expected = sign(self._key, self._status + b" " + body)
        if not hmac.compare_digest(expected, self._mac):
            self.forged = True
            return None, b""
        return self.runner_exit, body


def await_ready(sock: socket.socket, timeout_s: float) -> None:
    """Block until the guard's ready line arrives on a freshly started container's stream (its runner has
    started and waits for the job); raises RuntimeError with the container's stderr if it exits or stalls."""
    stream = AttachStream()
    deadline = time.monotonic() + timeout_s
    while READY not in stream.stdout:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            chunk, why = sock.recv(1 << 16), "exited"
        except TimeoutError:
            chunk, why = b"", f"was not ready within {timeout_s:g} s"
        if not chunk:
            tail = stream.stderr.decode("utf-8", "replace")[-300:].strip()
            raise RuntimeError(f"runner container {why} before its runner started" + (f": {tail}" if tail else ""))
        stream.feed(chunk)
    if stream.partial or stream.stdout.index(READY) + len(READY) != len(stream.stdout):
        raise RuntimeError("runner container wrote more than its ready line before the job")


@dataclass
class Exchange:
    """What came back from one job: the runner's exit status and stdout as vouched for by the guard, or how
    the exchange failed (no guard header: the guard was killed, the container died, or the deadline hit)."""

    runner_exit: Optional[int] = None
    runner_stdout: bytes = b""
    timed_out: bool = False
    stderr_tail: str = ""
    foreign_bytes: int = 0  # stdout bytes before the guard's header: written by something else in the container
    forged: bool = False  # a header with our nonce came with an answer whose MAC was wrong
    connection_failed: bool = False  # the engine dropped our attach connection: nothing the program did
    rest: AttachStream = field(default_factory=AttachStream)  # what followed the answer on the stream
    reset_line: bytes = b""  # the signed ready line that says the container is clean again (if it serves again)

    @property
    def clean(self) -> bool:
        """Whether the exchange went exactly as the protocol says: an authentic answer of a runner that exited
        normally, and nothing else written to the container's stdout. Only such a container may serve again."""
        return (self.runner_exit == 0 and not self.timed_out and not self.connection_failed
                and not self.foreign_bytes and not self.forged)

    @property
    def answered(self) -> bool:
        return self.runner_exit is not None
