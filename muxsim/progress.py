"""Progress bars (tqdm, on stderr) for whatever can run longer than a few seconds.

A bar shows only when stderr is a terminal and ``quiet`` is false; it never touches
stdout and never changes a result. A background thread refreshes it twice a second, so
that the elapsed time moves during one long step (an ILP solve, a large simulation).
"""

from __future__ import annotations

import sys
import threading
from typing import Any


class Progress:
    """``with Progress("compare", total=8, quiet=args.quiet) as p: p.step("muxserve: simulate")``."""

    def __init__(self, desc: str, total: float | None = None, *, unit: str = "step", quiet: bool = False) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                        disable=True if quiet else None, mininterval=0.2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not self.bar.disable:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self.bar.refresh()

    def status(self, text: str) -> None:
        """What is being done now (shown after the bar)."""
        self.bar.set_postfix_str(text, refresh=False)

    def advance(self, n: float = 1) -> None:
        self.bar.update(n)

    def done_of(self, done: int, total: int) -> None:
        """A callback for :func:`muxsim.simulate`'s ``progress``: ``done`` of ``total`` finished."""
        if self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
