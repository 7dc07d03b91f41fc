"""Clocks for the real-time loop: the monotonic wall clock, and a fake one for tests.

The loop only calls `now_ns()` and `sleep_until(deadline_ns)`, so its timing
logic is tested deterministically with `FakeClock`.
"""

from __future__ import annotations

import time
from typing import Protocol

SPIN_NS = 200_000
"""Sleep until this close to a deadline, then spin: the OS wakes late by up to milliseconds."""


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def sleep_until(self, deadline_ns: int) -> None: ...


class MonotonicClock:
    """time.monotonic_ns with sleep-then-spin waiting."""

    def __init__(self, spin_ns: int = SPIN_NS):
        self.spin_ns = spin_ns

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until(self, deadline_ns: int) -> None:
        remaining = deadline_ns - time.monotonic_ns()
        if remaining > self.spin_ns:
            time.sleep((remaining - self.spin_ns) / 1e9)
        while time.monotonic_ns() < deadline_ns:
            pass


class FakeClock:
    """A clock that moves only when told: sleeping jumps to the deadline, `advance` adds time
    (e.g. a tick's compute time in a test)."""

    def __init__(self, start_ns: int = 0):
        self.t = start_ns

    def now_ns(self) -> int:
        return self.t

    def sleep_until(self, deadline_ns: int) -> None:
        self.t = max(self.t, deadline_ns)

    def advance(self, ns: int) -> None:
        self.t += ns
