"""``stdlib-codesearch``: the embedded default data set, built from the installed Python stdlib.

A CodeSearchNet-style task that needs no download: every function or method of the
standard library with a docstring of at least :data:`MIN_QUERY_WORDS` words gives

* a **query**: the docstring's first sentence, whitespace normalised;
* its one relevant **document**: the function's source with the docstring removed
  (``def`` line included, decorators not, indentation of the ``def`` removed; title ``""``).

Skipped: test packages and ``test*`` modules, ``idle_test``, ``site-packages``, folders or
files that are not importable module names, ``__main__.py``, files that fail to decode or
parse, functions nested in functions, functions whose body without the docstring has fewer
than :data:`MIN_BODY_LINES` code lines or only ``pass`` / ``...`` / ``raise
NotImplementedError``. When several functions share a query text (case-insensitive) or the
same code, one is kept: the one with the fewest private (``_x``) module parts, then private
name parts, then the shortest module path, then the smallest id.

Document ids are ``module:QualName`` (``json.decoder:JSONDecoder.raw_decode``), query ids
``q:`` + document id (distinct from the doc id, so "ignore identical ids" evaluation options
never drop the answer). Splits come from a stable hash of the document id (80/10/10
train/dev/test), so a function keeps its split across stdlib versions. The corpus holds
every split's documents, as in BEIR.

The build is deterministic (sorted walk, sorted output) and cached as a BEIR folder under
``$UNIRANK_CACHE`` (default ``platformdirs.user_cache_dir("unirank")``) in
``stdlib-codesearch-py<major.minor>-v<BUILDER_VERSION>/``, written to a temporary folder and
renamed into place, so a crash never leaves a half-built cache.

Example:
    >>> first_sentence("Return the thing.  More detail follows.")
    'Return the thing.'
    >>> split_of("json.decoder:JSONDecoder.raw_decode") in ("train", "dev", "test")
    True
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import sysconfig
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import DataError
from ..io import atomic_dir
from ..types import RetrievalDataset
from .beir import load_beir

__all__ = [
    "BUILDER_VERSION",
    "NAME",
    "CodeFunction",
    "first_sentence",
    "split_of",
    "extract_functions",
    "iter_stdlib_modules",
    "build_codesearch",
    "cache_root",
    "codesearch_dir",
    "load_codesearch",
]

#: bump when the extraction rules change; it names the cache folder
BUILDER_VERSION = 1
NAME = "stdlib-codesearch"
MIN_QUERY_WORDS = 4
MIN_BODY_LINES = 2
SPLITS = ("train", "dev", "test")

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
_ABBREVIATIONS = {"e.g.", "i.e.", "etc.", "vs.", "cf.", "resp.", "approx.", "no.", "mr.", "dr."}
_SENTENCE_END = re.compile(r"[.!?](?=\s)")
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->.*)?$", re.S)


@dataclass(frozen=True)
class CodeFunction:
    """One extracted (query, code) pair.

    Attributes:
        module: dotted module name, e.g. ``json.decoder``.
        qualname: dotted name inside the module, e.g. ``JSONDecoder.raw_decode``.
        query: the docstring's first sentence.
        code: the source without the docstring, dedented to the ``def`` line.
    """

    module: str
    qualname: str
    query: str
    code: str

    @property
    def doc_id(self) -> str:
        return f"{self.module}:{self.qualname}"

    @property
    def query_id(self) -> str:
        return f"q:{self.doc_id}"


def first_sentence(docstring: str) -> str:
    """The first sentence of a docstring's first paragraph, whitespace normalised.

    A leading paragraph that is only a call signature (``f(x) -> y``, as in docstrings that
    mirror C functions) is skipped, and so are doctest lines (from ``>>>`` to the end of
    their paragraph). The sentence ends at the first ``.``, ``!`` or ``?``
    followed by whitespace, except after common abbreviations (``e.g.``, ``i.e.``, ...);
    without one the whole paragraph is the sentence.

    Args:
        docstring: the docstring (cleaned or raw).

    Returns:
        The sentence, or ``""`` for an empty docstring.

    Example:
        >>> first_sentence("Split a path, e.g. 'a/b'.\\nThen more.")
        "Split a path, e.g. 'a/b'."
        >>> first_sentence("f(x) -> int\\n\\nReturn the\\n   integer value\\n\\nDetails.")
        'Return the integer value'
        >>> first_sentence(">>> f(1)\\n2\\n\\nCompute f.")
        'Compute f.'
    """
    paragraphs = []
    for para in re.split(r"\n\s*\n", docstring.strip()):
        prose = []
        for line in para.split("\n"):
            if line.strip().startswith(">>>"):
                break  # a doctest is code, not a description
            prose.append(line)
        text = " ".join(" ".join(prose).split())
        if text:
            paragraphs.append(text)
    if len(paragraphs) > 1 and _SIGNATURE.match(paragraphs[0]):
        paragraphs = paragraphs[1:]
    if not paragraphs:
        return ""
    text = paragraphs[0] + " "
    for m in _SENTENCE_END.finditer(text):
        last_word = text[: m.end()].rsplit(" ", 1)[-1].lower()
        if last_word in _ABBREVIATIONS:
            continue
        return text[: m.end()].strip()
    return text.strip()


def split_of(doc_id: str) -> str:
    """The split of a document id: ``sha1(id)`` mod 10 -> 0-7 train, 8 dev, 9 test.

    Example:
        >>> [split_of(f"m:f{i}") for i in range(6)]
        ['train', 'train', 'train', 'train', 'dev', 'dev']
    """
    bucket = int(hashlib.sha1(doc_id.encode("utf-8")).hexdigest()[:8], 16) % 10
    return "train" if bucket < 8 else "dev" if bucket == 8 else "test"


def _is_trivial_stmt(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and stmt.value.value is Ellipsis:
        return True
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def _function_code(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """Source of ``node`` (from its ``def`` line) without its docstring, or None if unusable."""
    doc = node.body[0]
    start, end = node.lineno, node.end_lineno
    if end is None or doc.end_lineno is None or doc.lineno <= start:
        return None  # docstring on the def line: cannot cut it out cleanly
    first, last = lines[doc.lineno - 1], lines[doc.end_lineno - 1]
    if first[: doc.col_offset].strip():
        return None
    tail = last.encode("utf-8")[doc.end_col_offset :].decode("utf-8", "replace").strip()
    if tail and not tail.startswith("#"):
        return None  # e.g. '"""doc"""; x = 1'
    head = lines[start - 1 : doc.lineno - 1]
    while len(head) > 1 and not head[-1].strip():
        head = head[:-1]
    rest = lines[doc.end_lineno : end]
    while rest and not rest[0].strip():
        rest = rest[1:]
    body_lines = [ln for ln in rest if ln.strip() and not ln.strip().startswith("#")]
    if len(body_lines) < MIN_BODY_LINES:
        return None
    indent = lines[start - 1][: node.col_offset]
    out = [ln[len(indent) :] if ln.startswith(indent) else ln.lstrip() for ln in head + rest]
    return "\n".join(ln.rstrip() for ln in out)


def extract_functions(source: str, module: str) -> list[CodeFunction]:
    """All usable (query, code) pairs of one module's source, in source order.

    Top-level functions and methods of (nested) classes are visited; functions defined
    inside functions are not (their code is part of the enclosing function).

    Args:
        source: the module's source text.
        module: its dotted module name (used for ids).

    Returns:
        A list of :class:`CodeFunction`; ``[]`` if the source does not parse.

    Example:
        >>> src = '''
        ... class Box:
        ...     def size(self, unit="cm"):
        ...         \"\"\"Return the size of the box.  Unit is cm.\"\"\"
        ...         n = len(self.items)
        ...         return f"{n} {unit}"
        ...     def tiny(self):
        ...         \"\"\"Too short.\"\"\"
        ...         return 1
        ... '''
        >>> [(f.doc_id, f.query) for f in extract_functions(src, "box")]
        [('box:Box.size', 'Return the size of the box.')]
        >>> print(extract_functions(src, "box")[0].code)
        def size(self, unit="cm"):
            n = len(self.items)
            return f"{n} {unit}"
    """
    tree = _parse(source)
    return [] if tree is None else _functions_in_tree(tree, source, module)


def _parse(source: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for invalid escapes in old code
            return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def _functions_in_tree(tree: ast.Module, source: str, module: str) -> list[CodeFunction]:
    lines = source.split("\n")
    found: list[CodeFunction] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fn = _extract_one(lines, node, module, prefix + node.name)
                if fn is not None:
                    found.append(fn)
            elif isinstance(node, (ast.If, ast.Try)):
                # functions defined under `if sys.platform ...:` or `try: ... except ImportError:`
                for block in (getattr(node, "body", []), getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                    visit(block, prefix)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body, prefix)

    visit(tree.body, "")
    return found


def _extract_one(
    lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef, module: str, qualname: str
) -> CodeFunction | None:
    docstring = ast.get_docstring(node, clean=True)
    if not docstring:
        return None
    query = first_sentence(docstring)
    if len(query.split()) < MIN_QUERY_WORDS:
        return None
    if all(_is_trivial_stmt(s) for s in node.body[1:]):
        return None
    code = _function_code(lines, node)
    if code is None:
        return None
    return CodeFunction(module=module, qualname=qualname, query=query, code=code)


def _default_stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def iter_stdlib_modules(root: str | os.PathLike) -> Iterator[tuple[str, Path]]:
    """``(module_name, path)`` for each eligible ``.py`` file under ``root``, sorted by path.

    Skips folders named ``test``/``tests``/``idle_test``/``site-packages``, any folder or
    file whose name starts with ``test`` or is not a Python identifier, and ``__main__.py``.

    Example:
        >>> import tempfile, pathlib
        >>> r = pathlib.Path(tempfile.mkdtemp())
        >>> for rel in ["a.py", "pkg/__init__.py", "pkg/b.py", "test_x.py", "tests/c.py", "lib-dynload/d.py"]:
        ...     (r / rel).parent.mkdir(parents=True, exist_ok=True); _ = (r / rel).write_text("")
        >>> [m for m, _ in iter_stdlib_modules(r)]
        ['a', 'pkg', 'pkg.b']
    """
    root = Path(root)

    def ok(name: str) -> bool:
        return name.isidentifier() and name not in _SKIP_DIRS and not name.lower().startswith("test")

    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if ok(d))
        rel_dir = Path(dirpath).relative_to(root).parts
        for fname in sorted(filenames):
            if not fname.endswith(".py") or fname == "__main__.py":
                continue
            stem = fname[:-3]
            if stem != "__init__" and not ok(stem):
                continue
            parts = list(rel_dir) if stem == "__init__" else [*rel_dir, stem]
            if parts:
                found.append((".".join(parts), Path(dirpath) / fname))
    found.sort(key=lambda mp: mp[1].relative_to(root).as_posix())
    yield from found


def _preference(fn: CodeFunction) -> tuple:
    """Sort key: public module paths and names first, then shorter module paths, then id."""
    mod_parts = fn.module.split(".")
    name_parts = fn.qualname.split(".")
    private = lambda p: p.startswith("_") and not (p.startswith("__") and p.endswith("__"))  # noqa: E731
    return (sum(map(private, mod_parts)), sum(map(private, name_parts)), len(mod_parts), fn.doc_id)


def _collect(root: Path) -> tuple[list[CodeFunction], dict[str, int]]:
    stats = {"files": 0, "files_skipped": 0, "functions_extracted": 0}
    candidates: list[CodeFunction] = []
    seen_ids: set[str] = set()
    for module, path in iter_stdlib_modules(root):
        stats["files"] += 1
        try:
            source = importlib.util.decode_source(path.read_bytes())
        except (OSError, SyntaxError, UnicodeDecodeError, LookupError):
            stats["files_skipped"] += 1
            continue
        tree = _parse(source)
        if tree is None:
            stats["files_skipped"] += 1
            continue
        for fn in _functions_in_tree(tree, source, module):
            if fn.doc_id in seen_ids:  # e.g. the same name defined twice under `if`/`else`
                continue
            seen_ids.add(fn.doc_id)
            candidates.append(fn)
    stats["functions_extracted"] = len(candidates)
    kept: list[CodeFunction] = []
    queries: set[str] = set()
    codes: set[str] = set()
    for fn in sorted(candidates, key=_preference):
        qkey = fn.query.casefold()
        if qkey in queries or fn.code in codes:
            continue
        queries.add(qkey)
        codes.add(fn.code)
        kept.append(fn)
    kept.sort(key=lambda f: f.doc_id)
    return kept, stats


def _line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def build_codesearch(out_dir: str | os.PathLike, stdlib_root: str | os.PathLike | None = None) -> dict:
    """Build the data set from the ``.py`` files under ``stdlib_root`` into a BEIR folder.

    Writes ``corpus.jsonl``, ``queries.jsonl``, ``qrels/{train,dev,test}.tsv`` (with a
    header; a split can be empty for a tiny source tree) and ``meta.json``. The output is
    byte-identical for the same source tree and Python version. ``out_dir`` is written in
    place; :func:`codesearch_dir` wraps this in a temp-folder-and-rename.

    Args:
        out_dir: the folder to write (created).
        stdlib_root: the source tree (default: this interpreter's stdlib).

    Returns:
        The metadata written to ``meta.json`` (counts, Python version, source path).
    """
    root = Path(stdlib_root) if stdlib_root is not None else _default_stdlib()
    if not root.is_dir():
        raise DataError("stdlib folder not found", path=root)
    functions, stats = _collect(root)
    out = Path(out_dir)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for fn in functions:
            f.write(_line({"_id": fn.doc_id, "title": "", "text": fn.code}))
    with open(out / "queries.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for fn in sorted(functions, key=lambda x: x.query_id):
            f.write(_line({"_id": fn.query_id, "text": fn.query}))
    counts = {}
    for split in SPLITS:
        rows = sorted((fn.query_id, fn.doc_id) for fn in functions if split_of(fn.doc_id) == split)
        counts[split] = len(rows)
        with open(out / "qrels" / f"{split}.tsv", "w", encoding="utf-8", newline="\n") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            f.writelines(f"{q}\t{d}\t1\n" for q, d in rows)
    meta = {
        "name": NAME,
        "builder_version": BUILDER_VERSION,
        "python_version": ".".join(map(str, sys.version_info[:3])),
        "python_implementation": sys.implementation.name,
        "stdlib": str(root),
        "documents": len(functions),
        "queries": len(functions),
        "qrels": counts,
        **stats,
    }
    with open(out / "meta.json", "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache root: ``cache_dir``, else ``$UNIRANK_CACHE``, else ``platformdirs.user_cache_dir("unirank")``."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("UNIRANK_CACHE"):
        return Path(os.environ["UNIRANK_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("unirank"))


def codesearch_dir(cache_dir: str | os.PathLike | None = None, stdlib_root: str | os.PathLike | None = None) -> Path:
    """The cached BEIR folder of the data set, built first if absent.

    The folder is ``<cache root>/stdlib-codesearch-py<major.minor>-v<BUILDER_VERSION>``, with
    a short hash of the source path appended when ``stdlib_root`` is not the default.
    It is built in a temporary sibling folder and renamed into place; when two processes
    race, the first rename wins and the other's copy is discarded.

    Args:
        cache_dir: cache root (see :func:`cache_root`).
        stdlib_root: source tree (default: this interpreter's stdlib).

    Returns:
        The folder path (holding ``meta.json``).
    """
    root = cache_root(cache_dir)
    folder_name = f"{NAME}-py{sys.version_info[0]}.{sys.version_info[1]}-v{BUILDER_VERSION}"
    if stdlib_root is not None and Path(stdlib_root).resolve() != _default_stdlib().resolve():
        folder_name += "-" + hashlib.sha1(str(Path(stdlib_root).resolve()).encode()).hexdigest()[:8]
    final = root / folder_name
    if (final / "meta.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    if final.exists():  # an incomplete folder left by hand or by an old crash: rebuild it
        shutil.rmtree(final)
    # another process building the same cache meanwhile: the first finished folder stays (same content)
    with atomic_dir(final, replace=False) as tmp:
        build_codesearch(tmp, stdlib_root)
    return final


def load_codesearch(
    split: str = "test",
    cache_dir: str | os.PathLike | None = None,
    limit_queries: int | None = None,
    stdlib_root: str | os.PathLike | None = None,
) -> RetrievalDataset:
    """Load one split of ``stdlib-codesearch`` (building and caching it on first use).

    Args:
        split: ``"train"``, ``"dev"`` or ``"test"``.
        cache_dir: cache root (default ``$UNIRANK_CACHE`` or the user cache folder).
        limit_queries: keep only the first N judged queries of the split, ordered by
            ``sha1(query id)`` (a stable, unbiased subsample for quick demos). The corpus
            and the ``queries`` table are unchanged; the fingerprint records the limit.
        stdlib_root: source tree (default: this interpreter's stdlib).

    Returns:
        A :class:`RetrievalDataset` named ``"stdlib-codesearch"``.
    """
    if limit_queries is not None and limit_queries < 1:
        raise ValueError(f"limit_queries must be >= 1 or None, got {limit_queries}")
    ds = load_beir(codesearch_dir(cache_dir, stdlib_root), split=split, name=NAME)
    if limit_queries is not None and limit_queries < len(ds.qrels):
        keep = sorted(ds.qrels, key=lambda q: (hashlib.sha1(q.encode("utf-8")).hexdigest(), q))[:limit_queries]
        ds.qrels = {q: ds.qrels[q] for q in sorted(keep)}
        ds.fingerprint = hashlib.sha256(f"{ds.fingerprint}:limit_queries={limit_queries}".encode()).hexdigest()[:16]
    return ds
