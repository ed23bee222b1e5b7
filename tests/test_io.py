"""unirank.io: atomic folders (atomic_dir, replace_dir), leftovers of killed writers, --out probes."""

from __future__ import annotations

import os
import signal

import pytest

from unirank import io as uio
from unirank.errors import ConfigError


def _tree(p):
    return {str(q.relative_to(p)): q.read_text() for q in sorted(p.rglob("*")) if q.is_file()}


def test_atomic_dir_replaces_the_folder_as_a_unit(tmp_path):
    out = tmp_path / "out"
    with uio.atomic_dir(out, marker="metrics.json") as tmp:
        (tmp / "metrics.json").write_text("1")
        (tmp / "report.html").write_text("old report")
    with uio.atomic_dir(out, marker="metrics.json") as tmp:
        (tmp / "metrics.json").write_text("2")
    # no file of the first run beside the second run's
    assert _tree(out) == {"metrics.json": "2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_run_leaves_the_old_folder_untouched(tmp_path):
    out = tmp_path / "out"
    with uio.atomic_dir(out) as tmp:
        (tmp / "metrics.json").write_text("old")
        (tmp / "report.html").write_text("old report")
    with pytest.raises(OSError, match="No space"):
        with uio.atomic_dir(out) as tmp:
            (tmp / "metrics.json").write_text("new")
            raise OSError(28, "No space left on device")
    assert _tree(out) == {"metrics.json": "old", "report.html": "old report"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_folder_unirank_did_not_write_is_refused_not_deleted(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match=r"non-empty folder that unirank did not write \(it has no metrics.json\)"):
        with uio.atomic_dir(home, marker="metrics.json") as tmp:
            (tmp / "metrics.json").write_text("{}")
    assert _tree(home) == {"thesis.tex": "years of work"}
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file; expected an output folder"):
        uio.check_replaceable(tmp_path / "file", "metrics.json", key="out")
    uio.check_replaceable(tmp_path / "missing", "metrics.json")
    (tmp_path / "empty").mkdir()
    uio.check_replaceable(tmp_path / "empty", "metrics.json")


def test_the_swap_is_one_step_where_linux_allows(tmp_path, monkeypatch):
    """With renameat2(RENAME_EXCHANGE) the target never disappears: os.replace is not used."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "f").write_text("old")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "f").write_text("new")
    calls = []
    real = os.replace
    monkeypatch.setattr(uio.os, "replace", lambda a, b: (calls.append((a, b)), real(a, b)))
    if not uio._exchange(tmp_path / "new", tmp_path / "out"):
        pytest.skip("no renameat2 RENAME_EXCHANGE here")
    uio._exchange(tmp_path / "new", tmp_path / "out")  # swap back
    uio.replace_dir(tmp_path / "new", tmp_path / "out")
    assert (tmp_path / "out" / "f").read_text() == "new" and not calls
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_writer_killed_between_the_two_renames_gets_its_folder_back(tmp_path):
    """The rename-aside fallback: kill -9 after the old folder moved aside, before the new one
    moved in; the next writer (or clean_leftovers) puts the old complete folder back."""
    out = tmp_path / "out"
    with uio.atomic_dir(out) as tmp:
        (tmp / "f").write_text("old")
    pid = os.fork()
    if pid == 0:  # the killed writer
        uio._exchange = lambda a, b: False
        real = os.replace

        def replace(a, b):
            if str(a).endswith(".tmp"):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(a, b)

        os.replace = replace
        try:
            with uio.atomic_dir(out) as tmp:
                (tmp / "f").write_text("new")
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "out" not in names and any(".old-" in n for n in names) and any(n.endswith(".tmp") for n in names)
    handled = uio.clean_leftovers(tmp_path)
    assert len(handled) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and _tree(out) == {"f": "old"}


def test_clean_leftovers_spares_live_writers_and_other_files(tmp_path):
    live = tmp_path / f".out.{os.getpid()}-abcdefgh.tmp"
    dead = tmp_path / ".out.999999999-abcdefgh.tmp"
    legacy = tmp_path / ".report.html.k2j4h5g6.tmp"  # an atomic_open temp file of an older version
    for p in (live, dead):
        p.mkdir()
    legacy.write_text("x")
    (tmp_path / ".bashrc.tmp").write_text("a user's")
    (tmp_path / "notes.tmp").write_text("a user's")
    assert uio.clean_leftovers(tmp_path, "out") == [dead.name]
    assert uio.clean_leftovers(tmp_path) == [legacy.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bashrc.tmp", live.name, "notes.tmp"]


def test_atomic_open_names_the_file_when_a_write_fails(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(uio.os, "fsync", full)
    with pytest.raises(OSError) as e:
        uio.write_text(tmp_path / "metrics.json", "{}")
    assert e.value.errno == 28 and e.value.filename == str(tmp_path / "metrics.json")
    assert list(tmp_path.iterdir()) == []


def test_check_writable_dir_probes_before_any_work(tmp_path):
    uio.check_writable_dir(tmp_path / "a" / "b" / "out")
    uio.check_writable_dir(tmp_path / "run", inside=True)
    assert list(tmp_path.iterdir()) == []  # nothing created, the probe is gone
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"^--out: .*f is a file; expected an output folder"):
        uio.check_writable_dir(tmp_path / "f", key="--out")
    with pytest.raises(ConfigError, match=r"^out: cannot create .*f/sub/out: .*f is a file, not a folder"):
        uio.check_writable_dir(tmp_path / "f" / "sub" / "out")
    if os.geteuid() != 0:  # root writes anywhere; the CLI tests run this case as an unprivileged user
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        with pytest.raises(ConfigError, match="cannot write to .*Permission denied"):
            uio.check_writable_dir(ro / "out")
