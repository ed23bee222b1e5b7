"""``unirank mine``: miner -> (teacher) -> filters -> sampler -> train.jsonl + manifest + audit.

:func:`run_mine` reads a data set, indexes its corpus with a miner
(:mod:`unirank.negatives.miners`), and for each chunk of the split's queries:
retrieves ``depth`` scored candidates and scores the positives with the same scorer,
optionally rescores both with a teacher, drops likely false negatives
(:mod:`unirank.negatives.filters`; the known positives always), picks ``negatives``
per query (:mod:`unirank.negatives.samplers`) and writes one line per query.

Outputs in ``cfg.out``:

* ``train.jsonl`` - see :mod:`unirank.negatives.convert` for the row format;
* ``mine.json`` - the manifest: resolved config, seed, miner index type and model
  fingerprint, corpus / qrels fingerprints, versions, counts, and the output's sha256;
* ``audit.jsonl`` / ``audit.html`` - see :mod:`unirank.negatives.audit`;
* ``train.<format>.jsonl`` when ``cfg.format`` is not ``unirank``;
* ``timings.json`` - wall-clock seconds (kept out of ``mine.json`` so it stays reproducible).

Reproducibility: every random choice for a query comes from its own generator, seeded
from ``(cfg.seed, sha256(query_id))``, so a query's negatives do not depend on chunk
sizes, on ``limit_queries`` or on the other queries; with the same inputs and seed,
``train.jsonl``, ``mine.json`` and the audit files are byte-identical.

Queries: those of the split with at least one positive (qrels grade > 0) present in the
corpus, in qrels order. Judged non-relevant documents (grade <= 0) may be negatives.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..config import Seed, to_dict
from ..errors import ConfigError, DataError
from ..index.config import RetrieverConfig
from ..io import atomic_dir, atomic_open, file_sha256, write_json
from ..models.base import import_model_kinds
from ..provenance import text_fingerprint, versions
from ..types import RetrievalDataset
from .audit import AuditCollector, write_audit
from .convert import CONVERTERS, convert_file
from .filters import CandidatePool, Filter, apply_filters, build_filters
from .miners import DENSE_SEARCHES, Miner, TeacherScorer, build_miner
from .samplers import SampleContext, Sampler, build_sampler

__all__ = [
    "MineConfig",
    "MineStats",
    "TeacherConfig",
    "build_mine_config",
    "load_teacher",
    "mine_rows",
    "parse_spec",
    "query_rng",
    "run_mine",
]

#: output formats: the native one plus every converter
FORMATS_NATIVE = "unirank"


def _default_filters() -> list[dict[str, Any]]:
    return [{"name": "duplicates"}, {"name": "relative_margin", "p": 0.05}]


@dataclass
class TeacherConfig:
    """Optional rescoring of candidates and positives (teacher scores are saved for distillation).

    Attributes:
        kind: a model kind in :data:`unirank.models.base.MODELS` (``cross``, ``uni``, ``bi``,
            ...); ``None`` = no teacher.
        model: folder / name passed to that class's ``from_pretrained``.
        depth: rescore the best ``depth`` candidates of each query (the rest get no teacher score).
        chunk_size: pairs per forward pass.
        device: where the teacher runs (``None``: CUDA when present, else CPU).
        backend: ``torch`` or ``onnx[:quantize=int8,threads=N]`` (:mod:`unirank.runtime.backends`).
    """

    kind: str | None = None
    model: str | None = None
    depth: int = 50
    chunk_size: int = 32
    device: str | None = None
    backend: str = "torch"


@dataclass
class MineConfig:
    """Everything ``unirank mine`` needs; saved in ``mine.json``.

    Attributes:
        data: BEIR folder or built-in data set name.
        split: qrels split whose queries are mined.
        miner: first stage; ``miner.name`` is a :data:`~unirank.negatives.miners.MINERS`
            name (``bm25``, ``dense``, ``hybrid``) and ``miner.bm25`` / ``miner.dense`` /
            ``miner.k_rrf`` its settings.
        depth: candidates retrieved per query.
        dense_search: ``faiss`` (``miner.dense.index_kind`` flat / ivf) or ``scan`` (exact,
            chunked over queries and documents).
        hybrid_depth: hits per side before RRF fusion.
        query_chunk: queries encoded, searched and processed together.
        doc_chunk: documents per block of the dense scan (and per FAISS add).
        teacher: optional rescoring, see :class:`TeacherConfig`.
        filters: ``[{"name": <FILTERS name>, **params}, ...]`` run in order after ``positives``.
        sampler: ``{"name": <SAMPLERS name>, **params}``.
        negatives: negatives written per query.
        keep_incomplete: also write queries that got fewer than ``negatives`` (counted either way).
        limit_queries: mine only the first N eligible queries.
        seed: base seed (see the module docstring).
        audit_top: suspicious negatives listed in the audit.
        format: ``unirank`` or a converter name (``flag``, ``st-triplet``, ``st-ntuple``);
            other than ``unirank`` also writes ``train.<format>.jsonl``.
        out: output folder (required by :func:`run_mine`).
    """

    data: str = "stdlib-codesearch"
    split: str = "train"
    miner: RetrieverConfig = field(default_factory=RetrieverConfig)
    depth: int = 100
    dense_search: str = "faiss"
    hybrid_depth: int = 100
    query_chunk: int = 1024
    doc_chunk: int = 16384
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    filters: list[dict[str, Any]] = field(default_factory=_default_filters)
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "top", "range_min": 0})
    negatives: int = 7
    keep_incomplete: bool = True
    limit_queries: int | None = None
    seed: Seed = 0
    audit_top: int = 50
    format: str = FORMATS_NATIVE
    out: str | None = None

    def validate(self) -> None:
        """Check names and ranges before any work (ConfigError lists the valid choices)."""
        from ..config import check_devices, check_out_dir, check_positive, check_ranges
        from .miners import MINERS

        check_ranges(self)

        if self.miner.name not in MINERS:
            raise ConfigError(f"miner.name: unknown miner {self.miner.name!r}; valid: {', '.join(MINERS.names())}")
        if self.dense_search not in DENSE_SEARCHES:
            raise ConfigError(f"dense_search: {self.dense_search!r} is unknown; valid: {', '.join(DENSE_SEARCHES)}")
        valid_formats = [FORMATS_NATIVE, *CONVERTERS.names()]
        if self.format not in valid_formats:
            raise ConfigError(f"format: {self.format!r} is unknown; valid: {', '.join(valid_formats)}")
        check_positive({key: getattr(self, key) for key in ("depth", "query_chunk", "doc_chunk", "hybrid_depth")})
        if self.negatives < 0:
            raise ConfigError(f"negatives must be >= 0, got {self.negatives}")
        if self.negatives == 0 and self.format in ("st-triplet", "st-ntuple"):
            raise ConfigError(f"format {self.format}: every row holds a negative; negatives must be >= 1, got 0")
        check_positive(
            {
                "limit_queries": self.limit_queries,
                "teacher.depth": self.teacher.depth,
                "teacher.chunk_size": self.teacher.chunk_size,
                "miner.dense.batch_size": self.miner.dense.batch_size,
            }
        )
        check_devices(
            {
                "miner.dense.device": self.miner.dense.device,
                "teacher.device": self.teacher.device if self.teacher.kind is not None else None,
            }
        )
        check_out_dir(self.out, marker=OUTPUT_MARKER)
        if self.teacher.kind is not None:
            from ..models.base import MODELS, DualEncoder

            import_model_kinds()
            if self.teacher.kind not in MODELS:
                raise ConfigError(
                    f"teacher.kind: unknown model kind {self.teacher.kind!r}; valid: {', '.join(MODELS.names())}"
                )
            if self.teacher.model is None and not issubclass(MODELS.get(self.teacher.kind), DualEncoder):
                raise ConfigError(
                    f"teacher.model: a {self.teacher.kind} teacher needs trained weights (--teacher-model DIR): "
                    f"from the plain backbone its scoring head would be random"
                )
        build_filters(self.filters)
        build_sampler(self.sampler)


def parse_spec(text: str) -> dict[str, Any]:
    """``"name:key=value,key=value"`` -> ``{"name": ..., key: value}`` (values parsed as YAML).

    For CLI flags such as ``--filter relative_margin:p=0.05`` or ``--sampler top:range_min=3``.

    Example:
        >>> parse_spec("relative_margin:p=0.05,use=teacher")
        {'name': 'relative_margin', 'p': 0.05, 'use': 'teacher'}
        >>> parse_spec("simans")
        {'name': 'simans'}
    """
    name, _, rest = text.partition(":")
    spec: dict[str, Any] = {"name": name.strip()}
    if not spec["name"]:
        raise ConfigError(f"{text!r}: expected NAME or NAME:key=value,...")
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if "=" not in part:
            raise ConfigError(f"{text!r}: {part!r} is not key=value")
        k, v = part.split("=", 1)
        spec[k.strip()] = yaml.safe_load(v) if v.strip() else ""
    return spec


def build_mine_config(
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    filters: Sequence[str] | None = None,
    sampler: str | None = None,
) -> MineConfig:
    """The MineConfig a command line asks for: YAML file, then ``key=value`` overrides, then specs.

    Args:
        config: optional YAML file with MineConfig keys.
        overrides: ``key=value`` strings (dotted keys, YAML values), e.g. ``["miner.name=dense"]``.
        filters: filter specs (:func:`parse_spec`) replacing the configured chain, in order;
            ``["none"]`` means no filter besides dropping the positives. ``None`` keeps the config's.
        sampler: a sampler spec replacing the configured sampler; ``None`` keeps it.

    Raises:
        ConfigError: bad keys, values or names (the valid ones are listed).

    Example:
        >>> cfg = build_mine_config(overrides=["miner.name=dense", "negatives=3"],
        ...                         filters=["relative_margin:p=0.1"], sampler="top:range_min=3")
        >>> cfg.miner.name, cfg.negatives, cfg.filters, cfg.sampler
        ('dense', 3, [{'name': 'relative_margin', 'p': 0.1}], {'name': 'top', 'range_min': 3})
    """
    from ..config import load_config

    cfg = load_config(MineConfig, config, list(overrides))
    if filters is not None:
        if "none" in filters and len(filters) > 1:
            raise ConfigError("--filter none means no filter besides dropping the positives; give it alone")
        cfg.filters = [] if list(filters) == ["none"] else [parse_spec(f) for f in filters]
    if sampler is not None:
        cfg.sampler = parse_spec(sampler)
    cfg.validate()
    return cfg


def query_rng(seed: int, query_id: str) -> np.random.Generator:
    """The generator used for one query: seeded by ``(seed, first 8 bytes of sha256(query_id))``.

    Example:
        >>> int(query_rng(0, "q1").integers(1000)) == int(query_rng(0, "q1").integers(1000))
        True
    """
    key = int.from_bytes(hashlib.sha256(query_id.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, key]))


@dataclass
class MineStats:
    """Counts reported in ``mine.json``. ``candidates_seen = sum(dropped) + candidates_kept``."""

    queries_in_split: int = 0
    queries_without_positive: int = 0
    queries_mined: int = 0
    queries_written: int = 0
    queries_with_too_few_negatives: int = 0
    queries_without_negatives: int = 0
    positives: int = 0
    positives_retrieved: int = 0
    candidates_seen: int = 0
    dropped: Counter = field(default_factory=Counter)
    candidates_kept: int = 0
    negatives_written: int = 0
    negatives_from_candidates: int = 0
    negatives_from_corpus: int = 0

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["dropped"] = dict(self.dropped)
        return d


@dataclass
class _Task:
    query_ids: list[str]
    query_texts: list[str]
    positives: list[list[int]]  # corpus rows


def _f(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _task(ds: RetrievalDataset, doc_row: dict[str, int], limit: int | None, stats: MineStats) -> _Task:
    qids, texts, pos = [], [], []
    stats.queries_in_split = len(ds.qrels)
    for qid, rel in ds.qrels.items():
        rows = [doc_row[d] for d, g in rel.items() if g > 0 and d in doc_row]
        if not rows:
            stats.queries_without_positive += 1
            continue
        if qid not in ds.queries:
            raise DataError(f"query {qid!r} of split {ds.split!r} is not in queries.jsonl", path=ds.name)
        if limit is not None and len(qids) >= limit:
            continue
        qids.append(qid)
        texts.append(ds.queries[qid].text)
        pos.append(rows)
    return _Task(qids, texts, pos)


def mine_rows(
    task: _Task,
    miner: Miner,
    doc_texts: Sequence[str],
    filters: Sequence[Filter],
    sampler: Sampler,
    cfg: MineConfig,
    stats: MineStats,
    audit: AuditCollector | None = None,
    teacher: TeacherScorer | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Mine every query of ``task``, ``cfg.query_chunk`` at a time; yield one output row per query.

    ``miner`` must already be built over the corpus whose row ``j`` has text ``doc_texts[j]``.
    Updates ``stats`` (and ``audit``) as it goes.
    """
    doc_ids = miner.doc_ids
    doc_row = {d: j for j, d in enumerate(doc_ids)}
    n_q = len(task.query_ids)
    for start in range(0, n_q, cfg.query_chunk):
        stop = min(start + cfg.query_chunk, n_q)
        qids, qtexts, prow = task.query_ids[start:stop], task.query_texts[start:stop], task.positives[start:stop]
        state = miner.prepare(qtexts)
        hits = miner.search(
            state, min(cfg.depth, len(doc_ids)), prow
        )  # buffers grow with the corpus, not a typo'd depth
        for j, qid in enumerate(qids):
            stats.queries_mined += 1
            valid = hits.indices[j] >= 0
            rows = hits.indices[j][valid]
            scores = hits.scores[j][valid].astype(np.float64)
            where = {int(r): n for n, r in enumerate(rows.tolist())}
            pos_rows = prow[j]
            pos_scores = np.asarray(hits.row_scores[j], dtype=np.float64).copy()
            pos_ranks = []
            for n, r in enumerate(pos_rows):  # a retrieved positive keeps exactly its retrieval score
                if r in where:
                    pos_scores[n] = scores[where[r]]
                    pos_ranks.append(where[r] + 1)
                else:
                    pos_ranks.append(None)
            stats.positives += len(pos_rows)
            stats.positives_retrieved += sum(r is not None for r in pos_ranks)
            texts = [doc_texts[r] for r in rows.tolist()]
            pos_texts = [doc_texts[r] for r in pos_rows]
            teach = pos_teach = None
            if teacher is not None:
                teach = teacher(qtexts[j], texts)
                pos_teach = teacher(qtexts[j], pos_texts, limit=False)
            pool = CandidatePool(
                ids=[doc_ids[r] for r in rows.tolist()],
                scores=scores,
                pos_ids=[doc_ids[r] for r in pos_rows],
                pos_scores=pos_scores,
                texts=texts,
                teacher=teach,
                pos_texts=pos_texts,
                pos_teacher=pos_teach,
            )
            stats.candidates_seen += len(pool)
            filtered = apply_filters(pool, filters)
            for name, k in filtered.dropped.items():
                stats.dropped[name] += k
            kept = filtered.pool
            stats.candidates_kept += len(kept)
            ctx = SampleContext(
                rng=query_rng(cfg.seed, qid), corpus_ids=doc_ids, exclude=frozenset(filtered.dropped_ids)
            )
            picked = sampler(kept, cfg.negatives, ctx)
            negatives = []
            for i in picked.index.tolist():
                neg = {
                    "id": kept.ids[i],
                    "text": kept.texts[i],
                    "score": _f(kept.scores[i]),
                    "rank": int(kept.ranks[i]),
                }
                if kept.teacher is not None:
                    neg["teacher"] = _f(kept.teacher[i])
                negatives.append(neg)
            if picked.outside_ids:
                out_rows = [doc_row[d] for d in picked.outside_ids]
                ask: list[list[int]] = [[] for _ in qids]
                ask[j] = out_rows
                out_scores = miner.score(state, ask)[j]
                out_texts = [doc_texts[r] for r in out_rows]
                out_teach = teacher(qtexts[j], out_texts, limit=False) if teacher is not None else None
                for n, (d, r) in enumerate(zip(picked.outside_ids, out_rows)):
                    neg = {"id": d, "text": doc_texts[r], "score": _f(out_scores[n]), "rank": None}
                    if out_teach is not None:
                        neg["teacher"] = _f(out_teach[n])
                    negatives.append(neg)
            stats.negatives_from_candidates += len(picked.index)
            stats.negatives_from_corpus += len(picked.outside_ids)
            positives = []
            for n, r in enumerate(pos_rows):
                p = {"id": doc_ids[r], "text": pos_texts[n], "score": _f(pos_scores[n]), "rank": pos_ranks[n]}
                if pos_teach is not None:
                    p["teacher"] = _f(pos_teach[n])
                positives.append(p)
            if len(negatives) < cfg.negatives:
                stats.queries_with_too_few_negatives += 1
            if not negatives:
                stats.queries_without_negatives += 1
            if audit is not None:
                _audit_query(audit, qid, qtexts[j], positives, pool, negatives)
            if len(negatives) < cfg.negatives and not cfg.keep_incomplete:
                continue
            stats.queries_written += 1
            stats.negatives_written += len(negatives)
            yield {"query_id": qid, "query": qtexts[j], "positives": positives, "negatives": negatives}
        if log is not None:
            log(f"mined {stop}/{n_q} queries")


def _audit_query(
    audit: AuditCollector, qid: str, query: str, positives: list[dict], pool: CandidatePool, negatives: list[dict]
) -> None:
    anchor = min(range(len(positives)), key=lambda n: (positives[n]["score"], n))
    p = positives[anchor]
    pos_set = set(pool.pos_ids)
    cand = [s for d, s in zip(pool.ids, pool.scores.tolist()) if d not in pos_set]
    audit.add(
        qid,
        query,
        (p["id"], p["text"], p["score"], p.get("teacher")),
        cand,
        [(n["id"], n["text"], n["score"], n["rank"], n.get("teacher")) for n in negatives if n["score"] is not None],
    )


def _corpus_fingerprint(doc_ids: Sequence[str], texts: Sequence[str]) -> str:
    return text_fingerprint(f"{d}\t{t}" for d, t in zip(doc_ids, texts))


def _qrels_fingerprint(ds: RetrievalDataset) -> str:
    return text_fingerprint(f"{q}\t{d}\t{g}" for q, rel in ds.qrels.items() for d, g in rel.items())


def _wants_teacher(step: Any) -> bool:
    """Does a filter or sampler read the teacher's scores (the ``teacher`` filter, or ``use=teacher``)?

    Example:
        >>> from .filters import build_filters
        >>> [_wants_teacher(f) for f in build_filters([{"name": "teacher", "threshold": 0.9},
        ...     {"name": "max_score", "threshold": 1.0, "use": "teacher"}, {"name": "relative_margin", "p": 0.1}])]
        [True, True, False]
    """
    return getattr(step, "name", None) == "teacher" or getattr(step, "use", None) == "teacher"


def load_teacher(cfg: TeacherConfig) -> TeacherScorer | None:
    """The teacher ``cfg`` names (through :func:`unirank.models.base.load_ranker`), or None."""
    if cfg.kind is None:
        return None
    from ..models.base import load_ranker

    return TeacherScorer(
        load_ranker(cfg.model, cfg.kind, device=cfg.device, backend=cfg.backend),
        depth=cfg.depth,
        chunk_size=cfg.chunk_size,
    )


#: the file every ``unirank mine`` output folder holds (an existing folder without it is never replaced)
OUTPUT_MARKER = "mine.json"


def run_mine(
    cfg: MineConfig,
    dataset: RetrievalDataset | None = None,
    miner: Miner | None = None,
    teacher: TeacherScorer | None = None,
    encoder: Any = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Mine hard negatives for ``cfg.split`` of ``cfg.data`` and write ``cfg.out`` (see the module docstring).

    Args:
        cfg: the run's settings.
        dataset: use this instead of loading ``cfg.data`` / ``cfg.split``.
        miner: an unbuilt miner to use instead of building ``cfg.miner.name`` (it is
            built on the corpus here unless it already has doc ids).
        teacher: a teacher to use instead of loading ``cfg.teacher``.
        encoder: a bi-encoder for the dense / hybrid miner instead of loading ``cfg.miner.dense.model``.
        log: called with progress lines.

    Returns:
        The manifest written to ``mine.json``.

    Raises:
        ConfigError: unknown miner / filter / sampler / format / teacher name, bad value.
        DataError: unreadable data.
    """
    from ..data.datasets import load_dataset

    if not cfg.out:
        raise ConfigError("out: an output folder is required")
    cfg.validate()
    say = log or (lambda _msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    filters = build_filters(cfg.filters)
    sampler = build_sampler(cfg.sampler)
    if teacher is None and cfg.teacher.kind is None:
        wants = [f"filter {s['name']!r}" for s, f in zip(cfg.filters, filters) if _wants_teacher(f)]
        wants += [f"sampler {cfg.sampler['name']!r}"] if _wants_teacher(sampler) else []
        if wants:
            raise ConfigError(
                f"{', '.join(wants)}: uses teacher scores, but no teacher is set - "
                "give --teacher KIND --teacher-model DIR (teacher.kind / teacher.model), or use=miner"
            )
    ds = dataset if dataset is not None else load_dataset(cfg.data, split=cfg.split)
    doc_ids = list(ds.corpus)
    doc_texts = [ds.corpus[d].full_text for d in doc_ids]
    stats = MineStats()
    task = _task(ds, {d: j for j, d in enumerate(doc_ids)}, cfg.limit_queries, stats)
    timings["load_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    miner = miner if miner is not None else build_miner(cfg, encoder)
    if not miner.doc_ids:
        say(f"indexing {len(doc_ids)} documents with {cfg.miner.name}")
        miner.build(doc_ids, doc_texts)
    elif list(miner.doc_ids) != doc_ids:
        raise ConfigError("the given miner was built on another corpus (doc ids differ)")
    teacher = teacher if teacher is not None else load_teacher(cfg.teacher)
    timings["index_s"] = time.perf_counter() - t
    if cfg.depth > len(doc_ids):
        print(
            f"note: depth={cfg.depth} is more than the {len(doc_ids)} documents of {ds.name}; every document is a "
            "candidate",
            file=sys.stderr,
        )

    # the folder is the unit: a failed run leaves an earlier one as it was, never old and new files side by side
    with atomic_dir(cfg.out, marker=OUTPUT_MARKER) as out:
        audit = AuditCollector(top=cfg.audit_top)
        t = time.perf_counter()
        with atomic_open(out / "train.jsonl", "w") as f:
            for row in mine_rows(task, miner, doc_texts, filters, sampler, cfg, stats, audit, teacher, say):
                f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        timings["mine_s"] = time.perf_counter() - t

        outputs = {"train.jsonl": file_sha256(out / "train.jsonl")}
        if cfg.format != FORMATS_NATIVE:
            name = f"train.{cfg.format}.jsonl"
            convert_file(out / "train.jsonl", out / name, cfg.format)
            outputs[name] = file_sha256(out / name)
        resolved = to_dict(cfg)
        resolved.pop("out")  # where the manifest lies; left out so that identical runs give identical files
        manifest = {
            "config": resolved,
            "seed": cfg.seed,
            "data": {
                "name": ds.name,
                "split": ds.split,
                "fingerprint": ds.fingerprint,
                "corpus_fingerprint": _corpus_fingerprint(doc_ids, doc_texts),
                "qrels_fingerprint": _qrels_fingerprint(ds),
                "documents": len(doc_ids),
            },
            "miner": miner.describe(),
            "teacher": teacher.describe() if teacher is not None else None,
            "counts": stats.to_json(),
            "outputs": outputs,
            "versions": versions(),
        }
        summary = {
            "data": f"{ds.name} / {ds.split}",
            "miner": manifest["miner"]["index"],
            "filters": cfg.filters,
            "sampler": cfg.sampler,
            "negatives": cfg.negatives,
            "seed": cfg.seed,
            "counts": manifest["counts"],
        }
        write_audit(out, audit, f"unirank mine audit: {cfg.miner.name} on {ds.name}/{ds.split}", summary)
        write_json(out / "mine.json", manifest)
        timings["total_s"] = time.perf_counter() - t0
        write_json(out / "timings.json", {k: round(v, 3) for k, v in timings.items()})
        return manifest
