"""A small progress bar on stderr: points done, rate, elapsed time and ETA.

On a terminal it redraws one line (at most 10 times a second); elsewhere (CI logs, notebooks) it prints a line
every 10% or 30 s, whichever comes first. Rate and ETA count only the points run in this session (not those a
`--resume` skipped).
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def fmt_duration(s: float) -> str:
    """Seconds as m:ss or h:mm:ss."""
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """progress = Progress(total); progress.update(failed=False) per point; progress.close()."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True, label: str = "sweep",
                 width: int = 24):
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.label = label
        self.width = width
        self.done = 0
        self.failed = 0
        self.t0 = time.monotonic()
        self._last_draw = 0.0
        self._last_line_frac = -1.0
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False

    @property
    def rate(self) -> float:
        """Points per second so far."""
        dt = time.monotonic() - self.t0
        return self.done / dt if dt > 0 else 0.0

    @property
    def eta_s(self) -> float:
        r = self.rate
        return (self.total - self.done) / r if r > 0 else float("inf")

    def line(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        fill = int(round(frac * self.width))
        bar = "#" * fill + "." * (self.width - fill)
        fail = f", {self.failed} failed" if self.failed else ""
        return (f"{self.label} [{bar}] {self.done}/{self.total} {100 * frac:3.0f}% | {self.rate:.1f} points/s | "
                f"elapsed {fmt_duration(time.monotonic() - self.t0)} | ETA {fmt_duration(self.eta_s)}{fail}")

    def update(self, n: int = 1, failed: bool = False) -> None:
        self.done += n
        self.failed += int(failed)
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
                self._last_draw = now
        else:
            frac = self.done / self.total
            if frac - self._last_line_frac >= 0.1 or now - self._last_draw >= 30 or self.done >= self.total:
                self.stream.write(self.line() + "\n")
                self.stream.flush()
                self._last_draw = now
                self._last_line_frac = frac

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
            self.stream.flush()
