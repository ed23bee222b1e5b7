"""What the bench scripts share for writing ``bench/RESULTS.md``: a dated section headed by
the exact command that produced it and the machine it ran on, appended to the file."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def section(title: str, script: str, machine: str, body: list[str]) -> str:
    """``## title (UTC time)``, the command (this process's arguments), the machine, then ``body``."""
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"\n## {title} ({when})\n",
        f"Command: `{shlex.join(['.venv/bin/python', f'bench/{script}'] + sys.argv[1:])}`  ",
        f"Machine: {machine}\n",
        *body, "",
    ])


def append(text: str) -> None:
    """Append ``text`` to bench/RESULTS.md."""
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(text)
