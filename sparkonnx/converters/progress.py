"""Progress of long driver-side work (conversion, quantization, zoo builds): timed stages and
tqdm bars.

Each stage is timed and logged at INFO; a tqdm bar counts the stages and another, when asked
for, the rows of a calibration pass. Bars (``tqdm.auto``: a widget in notebooks) show when
``show`` is True, or by default where someone watches: on a terminal or in a notebook, never in
a pipe or a log file.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["Stages", "attended", "progress_bar"]


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython else None
    return shell is not None and hasattr(shell, "kernel")


def attended() -> bool:
    """True on a terminal (stderr is a TTY) or in a Jupyter kernel: where a bar is seen."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        tty = False
    return tty or _in_notebook()


def progress_bar(total: int, desc: str, show: bool | None = None, **options: Any) -> Any:
    """A tqdm bar (tqdm.auto) over `total` steps; `show` None: shown when `attended()`."""
    from tqdm.auto import tqdm

    visible = attended() if show is None else show
    return tqdm(total=total, desc=desc, disable=not visible, leave=False, **options)


class Stages:
    """The timed stages of one job named ``name``; ``total`` stages give a bar of stages."""

    def __init__(
        self, name: str, show: bool | None, total: int | None = None, desc: str | None = None
    ) -> None:
        self.name = name
        self.show = show
        self.timings: dict[str, float] = {}
        self.bar: Any = None if total is None else self._bar(total, desc or name)
        self.rows_bar: Any = None

    def _bar(self, total: int, desc: str) -> Any:
        return progress_bar(total, desc, self.show)

    @contextmanager
    def stage(self, label: str) -> Iterator[None]:
        """Time the block as stage ``label``: logged, recorded in ``timings``, counted."""
        if self.bar is not None:
            self.bar.set_postfix_str(label)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[label] = round(time.perf_counter() - start, 3)
            logger.info("%s: %s %.2f s", self.name, label, self.timings[label])
            if self.bar is not None:
                self.bar.update(1)

    def expect(self, rows: int, label: str) -> None:
        """Start a bar over ``rows`` rows (e.g. a calibration pass); `advance` moves it."""
        self.rows_bar = self._bar(rows, f"{label} {self.name}")

    def advance(self, rows: int) -> None:
        """Count ``rows`` more rows on the rows bar, if one was started."""
        if self.rows_bar is not None:
            self.rows_bar.update(rows)

    def close(self) -> None:
        """Close the bars."""
        for bar in (self.bar, self.rows_bar):
            if bar is not None:
                bar.close()
