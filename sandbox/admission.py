"""Admission into the service's bounded queue, fair under backpressure, and the signed tickets that keep a
retrying client's place in line (see sandbox/server.py for how requests use them)."""

from __future__ import annotations

import asyncio
import bisect
import hmac
import os
from typing import Optional


class Admission:
    """A bounded count of admitted programs, with a bounded line of waiters in front of it, in arrival order.

    Each request gets a ticket (a number in arrival order) on its first arrival; a request answered 429 gets its
    ticket back and shows it when it retries, so the line orders waiters by when they first arrived, not by who
    won the latest retry. When the line is full, an older ticket takes the place of the youngest waiters (who
    are answered 429 and keep their tickets); a request younger than everyone in a full line is answered 429 at
    once. All methods run on the event loop thread, so no lock is needed."""

    def __init__(self, capacity: int, wait_capacity: Optional[int] = None, max_wait_s: float = 30.0) -> None:
        self.capacity = capacity
        self.wait_capacity = 4 * capacity if wait_capacity is None else wait_capacity
        self.max_wait_s = max_wait_s
        self.admitted = 0
        self.waiting = 0
        self.issued = 0  # tickets handed out so far
        self._line: list[tuple[int, int, asyncio.Future]] = []  # (ticket, programs, admitted?), oldest first

    def ticket(self) -> int:
        self.issued += 1
        return self.issued

    def try_admit(self, n: int) -> bool:
        """Admit ``n`` programs now if they fit and nobody is waiting; never waits."""
        if self._line or self.admitted + n > self.capacity:
            return False
        self.admitted += n
        return True

    async def admit(self, n: int, ticket: int) -> bool:
        """Admit ``n`` programs, waiting in line up to ``max_wait_s``; False means answer 429."""
        if self.try_admit(n):
            return True
        younger = sum(e[1] for e in self._line if e[0] > ticket)
        if self.max_wait_s <= 0 or self.wait_capacity - self.waiting + younger < n:
            return False
        while self.waiting + n > self.wait_capacity:  # make room: the youngest waiters go back to retrying
            _, m, bumped = self._line.pop()
            self.waiting -= m
            bumped.set_result(False)
        entry = (ticket, n, asyncio.get_running_loop().create_future())
        bisect.insort(self._line, entry, key=lambda e: e[0])
        self.waiting += n
        self._grant()
        try:
            await asyncio.wait({entry[2]}, timeout=self.max_wait_s)
        except asyncio.CancelledError:  # the client went away: give back the place, or the admission
            if not entry[2].done():
                self._leave(entry)
            elif entry[2].result():
                self.release(n)
            raise
        if not entry[2].done():
            self._leave(entry)
            return False
        return entry[2].result()

    def release(self, n: int) -> None:
        self.admitted -= n
        self._grant()

    def _leave(self, entry: tuple[int, int, asyncio.Future]) -> None:
        self._line.remove(entry)
        self.waiting -= entry[1]
        entry[2].cancel()
        self._grant()  # a big batch leaving the head may let smaller ones behind it in

    def _grant(self) -> None:
        while self._line and self.admitted + self._line[0][1] <= self.capacity:
            _, n, future = self._line.pop(0)
            self.waiting -= n
            self.admitted += n
            future.set_result(True)


class QueueFull(Exception):
    """No room for a request now: the service answers 429 with ``ticket``, its signed place in line."""

    def __init__(self, message: str, ticket: str) -> None:
        super().__init__(message)
        self.ticket = ticket


class Tickets:
    """Signed admission tickets, so a client can show its place in line but not invent an earlier one."""

    def __init__(self) -> None:
        self._key = os.urandom(16)

    def _mac(self, number: int) -> str:
        return hmac.new(self._key, str(number).encode(), "sha256").hexdigest()[:16]

    def sign(self, number: int) -> str:
        return f"{number}.{self._mac(number)}"

    def read(self, text: Optional[str]) -> Optional[int]:
        number, _, mac = (text or "").partition(".")
        if number.isdigit() and hmac.compare_digest(mac, self._mac(int(number))):
            return int(number)
        return None
