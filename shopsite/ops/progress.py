"""Progress bars and summaries for operator commands (rich).

Bars go to stderr, summaries to stdout: a script can keep the summary and
drop the bars. On a terminal the bars move; in a log they appear once, at
the end, with their final counts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def _stream(wrapper: Any) -> TextIO:
    # Django's OutputWrapper adds a newline to every write; rich needs the raw stream.
    return getattr(wrapper, "_out", wrapper)


@contextlib.contextmanager
def progress_bar(stderr: Any, description: str, total: int | None) -> Iterator[Callable[..., None]]:
    """A bar for one step; yields `advance(n, total=None)` (a new total when it became known)."""
    console = Console(file=_stream(stderr), stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1, total: int | None = None) -> None:
            progress.update(task, advance=n, **({"total": total} if total is not None else {}))

        yield advance


def table(rows: list[tuple[str, ...]]) -> str:
    """Plain aligned columns: readable in a terminal and in a log, easy to grep."""
    if not rows:
        return ""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
