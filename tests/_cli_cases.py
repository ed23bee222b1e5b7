"""Run many ``unirank`` command lines in one process (``python -m tests._cli_cases CASES.json``).

Each case goes through the real console entry point :func:`unirank.cli.main` exactly as
the ``unirank`` script does; its exit status, stdout and stderr are captured, and an
exception escaping the CLI is recorded with its traceback (what a user would see). One
process for the whole table keeps the torch/transformers import cost to one. Results are one
JSON list on stdout.

``--enospc-after N`` makes every ``os.fsync`` after the ``N``-th fail with ``ENOSPC`` - a
full disk for machines where no small tmpfs can be mounted (file writes are flushed with
fsync before they are renamed into place, which is where a full disk surfaces).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import os
import sys
import traceback


def run_case(argv: list[str], env: dict[str, str] | None = None) -> dict:
    from unirank.cli import main

    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        return _run(argv, main)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(argv: list[str], main) -> dict:
    out, err = io.StringIO(), io.StringIO()
    code, tb = 0, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - what the user would see as a traceback
            code, tb = 1, traceback.format_exc()
    return {"argv": argv, "exit": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "traceback": tb}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", help="JSON file: a list of {name, argv, env?} (env: variables set for that case only)")
    ap.add_argument("--enospc-after", type=int, default=None)
    args = ap.parse_args()
    cases = json.loads(open(args.cases, encoding="utf-8").read())
    if args.enospc_after is not None:
        real, calls = os.fsync, [0]

        def fsync(fd):
            calls[0] += 1
            if calls[0] > args.enospc_after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(fd)

        os.fsync = fsync
    results = []
    for case in cases:
        r = run_case(case["argv"], case.get("env"))
        r["name"] = case["name"]
        results.append(r)
    sys.stdout.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
