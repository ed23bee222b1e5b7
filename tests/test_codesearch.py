"""stdlib-codesearch builder: extraction rules on a fake stdlib, determinism, caching, splits."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from unirank.data.beir import load_beir
from unirank.data.codesearch import (
    BUILDER_VERSION,
    build_codesearch,
    codesearch_dir,
    extract_functions,
    first_sentence,
    load_codesearch,
    split_of,
)
from unirank.data.datasets import load_dataset

ALPHA = '''\
"""Module docstring is ignored."""
import math


def sum_squares(xs):
    """Compute the sum of squares of xs.  Extra detail that is not the query.

    More paragraphs.
    """

    total = 0
    for x in xs:
        total += x * x
    return total


def short_doc(x):
    """Too short here."""
    y = x + 1
    return y


def one_liner(x):
    """Return the value of x doubled."""
    return 2 * x


def stub(self):
    """This stub does nothing useful at all."""
    raise NotImplementedError(
        "subclasses must implement")


class Parser:
    class Inner:
        async def fetch(self, url):  # a comment on the def line
            """Fetch the url, e.g. over http.  Returns bytes."""  # trailing comment
            data = await get(url)
            return data

    def parse(self, text):
        """Parse the text
        into a list of tokens.
        """
        tokens = text.split()
        return [t for t in tokens if t]

    def _helper(self):
        def nested():
            """Nested functions are part of their parent."""
            a = 1
            return a
        return nested
'''

# a private copy of alpha.sum_squares (same query and code) and one more function whose
# query duplicates Parser.parse case-insensitively: both lose to the public module
PRIVATE = '''\
def sum_squares(xs):
    """Compute the sum of squares of xs.  Extra detail that is not the query.

    More paragraphs.
    """

    total = 0
    for x in xs:
        total += x * x
    return total


def parse_it(text):
    """PARSE THE TEXT INTO A LIST OF TOKENS."""
    out = text.split(",")
    return out
'''

PKG_INIT = '''\
def greet(name):
    """Say hello to the person named ``name`` politely."""
    message = "héllo " + name
    print(message)
'''

SKIPPED = '''\
def skipped_function(a, b):
    """This function should never appear in the data set."""
    c = a + b
    return c
'''


def gen_module(n: int) -> str:
    return "\n\n".join(
        f'def f{i}(x):\n    """Compute generated value number {i} for the caller."""\n    y = x + {i}\n    return y * '
        f"{i}\n"
        for i in range(n)
    )


def make_stdlib(root: Path, n_generated: int = 40) -> Path:
    files = {
        "alpha.py": ALPHA,
        "_alpha_private.py": PRIVATE,
        "pkg/__init__.py": PKG_INIT,
        "pkg/gen.py": gen_module(n_generated),
        "pkg/__main__.py": SKIPPED,
        "pkg/idle_test/helpers.py": SKIPPED,
        "tests/test_things.py": SKIPPED,
        "test/support.py": SKIPPED,
        "testing_utils.py": SKIPPED,
        "site-packages/thirdparty.py": SKIPPED,
        "lib-dynload/x.py": SKIPPED,
        "broken.py": "def oops(:\n    pass\n",
        "latin1.py": (
            '# -*- coding: latin-1 -*-\ndef caf(x):\n    """Return the caf\xe9 menu for the day."""\n'
            "    m = x\n    return m\n"
        ),
    }
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode("latin-1" if rel == "latin1.py" else "utf-8"))
    return root


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture()
def built(tmp_path):
    stdlib = make_stdlib(tmp_path / "stdlib")
    out = tmp_path / "out"
    meta = build_codesearch(out, stdlib_root=stdlib)
    return stdlib, out, meta


# ---------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    "doc, expected",
    [
        ("Return x.  Then more.", "Return x."),
        ("Return x.\nThen more.", "Return x."),
        ("Line one\ncontinues here\n\nSecond paragraph.", "Line one continues here"),
        ("Is it true? Yes.", "Is it true?"),
        ("Use i.e. this one. Not that.", "Use i.e. this one."),
        ("Version 3.11 is here.", "Version 3.11 is here."),
        ("sub(a, b) -> int\n\nSubtract b from a.", "Subtract b from a."),
        ("Sum things:\n>>> s(1)\n1\n", "Sum things:"),
        ("", ""),
    ],
)
def test_first_sentence(doc, expected):
    assert first_sentence(doc) == expected


def test_split_of_is_sha1_bucket():
    for i in range(50):
        doc_id = f"mod:fn{i}"
        bucket = int(hashlib.sha1(doc_id.encode()).hexdigest()[:8], 16) % 10
        assert split_of(doc_id) == ("train" if bucket < 8 else "dev" if bucket == 8 else "test")
    got = {split_of(f"m:f{i}") for i in range(200)}
    assert got == {"train", "dev", "test"}


def test_extract_functions_rules():
    fns = {f.doc_id: f for f in extract_functions(ALPHA, "alpha")}
    # short docstring, one-line body, NotImplementedError stub, nested function: all skipped
    assert sorted(fns) == ["alpha:Parser.Inner.fetch", "alpha:Parser.parse", "alpha:sum_squares"]
    assert fns["alpha:sum_squares"].query == "Compute the sum of squares of xs."
    assert fns["alpha:sum_squares"].code == (
        "def sum_squares(xs):\n    total = 0\n    for x in xs:\n        total += x * x\n    return total"
    )
    assert fns["alpha:Parser.parse"].query == "Parse the text into a list of tokens."
    assert fns["alpha:Parser.parse"].code == (
        "def parse(self, text):\n    tokens = text.split()\n    return [t for t in tokens if t]"
    )
    assert fns["alpha:Parser.Inner.fetch"].query == "Fetch the url, e.g. over http."
    assert fns["alpha:Parser.Inner.fetch"].code == (
        "async def fetch(self, url):  # a comment on the def line\n    data = await get(url)\n    return data"
    )
    assert extract_functions("def broken(:\n", "m") == []


# ---------------------------------------------------------------- the builder


def test_build_contents(built):
    stdlib, out, meta = built
    corpus = {d["_id"]: d for d in read_jsonl(out / "corpus.jsonl")}
    queries = {q["_id"]: q["text"] for q in read_jsonl(out / "queries.jsonl")}
    expected_named = {
        "alpha:sum_squares",  # kept over the identical _alpha_private copy
        "alpha:Parser.parse",  # kept over _alpha_private.parse_it (same query, other case)
        "alpha:Parser.Inner.fetch",
        "pkg:greet",
        "latin1:caf",
    }
    assert set(corpus) == expected_named | {f"pkg.gen:f{i}" for i in range(40)}
    assert set(queries) == {f"q:{d}" for d in corpus}
    assert all(d["title"] == "" for d in corpus.values())
    assert queries["q:pkg:greet"] == "Say hello to the person named ``name`` politely."
    assert corpus["pkg:greet"]["text"] == 'def greet(name):\n    message = "héllo " + name\n    print(message)'
    assert queries["q:latin1:caf"] == "Return the café menu for the day."
    assert queries["q:pkg.gen:f7"] == "Compute generated value number 7 for the caller."
    # every query has exactly one relevant document, in the split its id hashes to
    seen = {}
    for split in ("train", "dev", "test"):
        lines = (out / "qrels" / f"{split}.tsv").read_text().splitlines()
        assert lines[0] == "query-id\tcorpus-id\tscore"
        for line in lines[1:]:
            qid, did, score = line.split("\t")
            assert qid == f"q:{did}" and score == "1" and split_of(did) == split and did not in seen
            seen[did] = split
        assert meta["qrels"][split] == len(lines) - 1
    assert set(seen) == set(corpus)
    assert meta["documents"] == len(corpus) == 45 and meta["builder_version"] == BUILDER_VERSION
    assert meta["files_skipped"] == 1  # broken.py
    assert meta["files"] == 6  # alpha, _alpha_private, pkg, pkg.gen, latin1, broken


def test_build_is_byte_identical_and_splits_are_stable(built, tmp_path):
    stdlib, out, _ = built
    out2 = tmp_path / "out2"
    build_codesearch(out2, stdlib_root=stdlib)
    names = ["corpus.jsonl", "queries.jsonl", "meta.json", "qrels/train.tsv", "qrels/dev.tsv", "qrels/test.tsv"]
    for name in names:
        assert (out / name).read_bytes() == (out2 / name).read_bytes(), name
    # adding modules does not move existing documents between splits
    (stdlib / "zeta.py").write_text(gen_module(5).replace("def f", "def g").replace("generated", "another"))
    out3 = tmp_path / "out3"
    build_codesearch(out3, stdlib_root=stdlib)
    added = set()
    for split in ("train", "dev", "test"):
        before = set((out / "qrels" / f"{split}.tsv").read_text().splitlines())
        after = set((out3 / "qrels" / f"{split}.tsv").read_text().splitlines())
        assert before <= after
        added |= after - before
    assert {line.split("\t")[1] for line in added} == {f"zeta:g{i}" for i in range(5)}


def test_cache_build_once_then_load(tmp_path, monkeypatch):
    stdlib = make_stdlib(tmp_path / "stdlib")
    monkeypatch.setenv("UNIRANK_CACHE", str(tmp_path / "cache"))
    folder = codesearch_dir(stdlib_root=stdlib)
    assert folder.parent == tmp_path / "cache"
    assert folder.name.startswith("stdlib-codesearch-py") and f"-v{BUILDER_VERSION}-" in folder.name
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [folder.name]  # no temp folder left
    stamp = (folder / "corpus.jsonl").stat().st_mtime_ns
    # the second call reads the cache: a changed source tree does not change the data set
    (stdlib / "alpha.py").unlink()
    ds = load_codesearch("train", stdlib_root=stdlib)
    assert (folder / "corpus.jsonl").stat().st_mtime_ns == stamp
    assert "alpha:sum_squares" in ds.corpus and len(ds.corpus) == 45
    assert ds.name == "stdlib-codesearch" and ds.split == "train"
    assert all(list(docs) == [qid[2:]] for qid, docs in ds.qrels.items())
    assert ds.fingerprint == load_beir(folder, "train").fingerprint
    # an explicit cache_dir wins over the environment
    other = codesearch_dir(cache_dir=tmp_path / "elsewhere", stdlib_root=stdlib)
    assert other.parent == tmp_path / "elsewhere"


def test_incomplete_cache_folder_is_rebuilt(tmp_path):
    stdlib = make_stdlib(tmp_path / "stdlib")
    folder = codesearch_dir(tmp_path / "cache", stdlib)
    (folder / "meta.json").unlink()
    (folder / "corpus.jsonl").write_text("garbage")
    again = codesearch_dir(tmp_path / "cache", stdlib)
    assert again == folder and (folder / "meta.json").is_file()
    assert len(read_jsonl(folder / "corpus.jsonl")) == 45


def test_limit_queries_takes_first_by_hash(tmp_path):
    stdlib = make_stdlib(tmp_path / "stdlib")
    full = load_codesearch("train", cache_dir=tmp_path / "c", stdlib_root=stdlib)
    assert len(full.qrels) > 5
    small = load_codesearch("train", cache_dir=tmp_path / "c", stdlib_root=stdlib, limit_queries=5)
    expected = sorted(full.qrels, key=lambda q: hashlib.sha1(q.encode()).hexdigest())[:5]
    assert set(small.qrels) == set(expected)
    assert small.corpus == full.corpus and small.queries == full.queries
    assert small.fingerprint != full.fingerprint
    big = load_codesearch("train", cache_dir=tmp_path / "c", stdlib_root=stdlib, limit_queries=10_000)
    assert big.qrels == full.qrels and big.fingerprint == full.fingerprint
    via_registry = load_dataset(
        "stdlib-codesearch", split="train", cache_dir=tmp_path / "c", stdlib_root=stdlib, limit_queries=5
    )
    assert via_registry.qrels == small.qrels


# ---------------------------------------------------------------- the real stdlib


@pytest.mark.slow
def test_real_stdlib_build(tmp_path):
    t = time.perf_counter()
    folder = codesearch_dir(tmp_path)
    build_s = time.perf_counter() - t
    meta = json.loads((folder / "meta.json").read_text())
    assert build_s < 60, build_s
    assert meta["documents"] > 3000
    t = time.perf_counter()
    ds = load_codesearch("test", cache_dir=tmp_path)
    assert time.perf_counter() - t < 5
    assert len(ds.corpus) == meta["documents"] and len(ds.qrels) == meta["qrels"]["test"] > 200
    doc = load_codesearch("train", cache_dir=tmp_path).corpus  # same corpus in every split
    assert doc == ds.corpus
    modules = {d.split(":")[0] for d in ds.corpus}
    assert "json.decoder" in modules and "os" in modules
    assert not any(part.startswith("test") or part in ("tests", "idle_test") for m in modules for part in m.split("."))
    code = ds.corpus["json.decoder:JSONDecoder.decode"].text
    assert code.startswith("def decode(self, s, _w=WHITESPACE.match):") and '"""' not in code
    assert ds.queries["q:json.decoder:JSONDecoder.decode"].text.startswith("Return the Python representation of")
    # no two queries share a text, no two documents share code
    assert len({q.text.casefold() for q in ds.queries.values()}) == len(ds.queries)
    assert len({d.text for d in ds.corpus.values()}) == len(ds.corpus)
