"""What the bench scripts share for writing ``bench/RESULTS.md``: a dated section headed by
the exact command that produced it and the machine it ran on, appended to the file."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def section(title: str, script: str, machine: str, body: list[str]) -> str:
    """``## title (UTC time)``, the command (this process's arguments), the machine, then ``body``."""
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"\n## {title} ({when})\n",
            f"Command: `{shlex.join(['.venv/bin/python', f'bench/{script}'] + sys.argv[1:])}`  ",
            f"Machine: {machine}\n",
            *body,
            "",
        ]
    )


def append(text: str) -> None:
    """Append ``text`` to bench/RESULTS.md."""
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(text)


def host(device: str = "cpu", threads: int | str | None = None) -> str:
    """The machine for a section's ``Machine:`` line: platform, CPU count, torch version and
    where the work ran (the GPU's name, or the CPU with its torch threads; ``threads`` when
    the work ran in another process)."""
    import torch

    if device.startswith("cuda"):
        where = torch.cuda.get_device_name(0)
    else:
        where = f"CPU, {torch.get_num_threads() if threads is None else threads} threads"
    return f"{platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({where})"


def record(text: str, markdown: str | None = None) -> None:
    """Append ``text`` to bench/RESULTS.md, or write it to ``markdown`` (e.g. on a GPU box whose
    files come back by copy)."""
    if markdown:
        Path(markdown).write_text(text, encoding="utf-8")
    else:
        append(text)
