"""Retrievers ``splade`` (a SPLADE model + an exact or Seismic index) and ``fusion`` (RRF of any
registered retrievers, e.g. SPLADE + BM25 + dense).

Both follow the retriever interface of :mod:`unirank.index.retrievers`: ``build(doc_ids,
texts)``, ``search(query_texts, k) -> (scores, indices)``, ``doc_ids``; both are built from a
:class:`unirank.eval.config.RetrieverConfig` (``retriever.splade.*``, ``retriever.fuse``).

:class:`SpladeRetriever` also keeps what the SciFact table reports (:attr:`SpladeRetriever.stats`:
mean non-zeros per query and document, index bytes, encode and search seconds) and gives an
*explain* view (:meth:`SpladeRetriever.explain`): a query's heaviest expansion terms, those of
its retrieved documents, and the matched terms with their share of the score.

Example:
    >>> from unirank.models.backbone import tiny_backbone
    >>> from unirank.models.mlm_head import MLMHead
    >>> from unirank.models.splade import Splade
    >>> bb = tiny_backbone(hidden=16)
    >>> r = SpladeRetriever(Splade(bb, MLMHead.tied_to(bb.model.get_input_embeddings()), max_length=32))
    >>> r.build(["a", "b"], ["cats purr on sofas", "dogs bark at the postman"])
    >>> s, i = r.search(["why do cats purr"], k=2)
    >>> s.shape, sorted(r.stats)[:2]
    ((1, 2), ['doc_nnz', 'encode_docs_s'])
"""

from __future__ import annotations

import copy
import html
import time
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from .base import RETRIEVERS
from .learned_sparse import SeismicIndex, SparseExactIndex, SparseShardedIndex, check_vocab, warn_empty_queries

__all__ = ["SpladeRetriever", "FusionRetriever", "explain_html", "explain_markdown"]

SPLADE_INDEXES = ("exact", "seismic")


@RETRIEVERS.register("splade")
class SpladeRetriever:
    """Encode documents with SPLADE and search them exactly or with Seismic.

    Args:
        model: a :class:`~unirank.models.splade.Splade`, or a name / folder for its
            ``from_pretrained`` (default: the packaged SPLADE-tiny).
        index: ``exact`` (:class:`~unirank.index.learned_sparse.SparseExactIndex`) or
            ``seismic`` (:class:`~unirank.index.learned_sparse.SeismicIndex`).
        seismic: Seismic build and search parameters (one mapping; see ``SeismicIndex``).
        batch_size, device, dtype, show_progress: encoding settings.
        store, index_dir: search a sparse store written by ``unirank encode --kind splade``
            (and per-shard indexes from ``unirank index``) instead of encoding the corpus.
        settings: ``Splade.from_pretrained`` keyword settings when ``model`` is a name.
    """

    def __init__(
        self,
        model: Any = "splade-tiny",
        index: str = "exact",
        seismic: dict[str, Any] | None = None,
        batch_size: int = 32,
        device: str | None = None,
        dtype: str | None = None,
        show_progress: bool | None = None,
        store: str | None = None,
        index_dir: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        from ..models.splade import Splade

        if index not in SPLADE_INDEXES:
            raise ConfigError(f"retriever.splade.index: {index!r} is unknown; valid: {', '.join(SPLADE_INDEXES)}")
        self.encoder = model if isinstance(model, Splade) else Splade.from_pretrained(model, **(settings or {}))
        self.index_kind, self.store, self.index_dir = index, store, index_dir
        seismic = dict(seismic or {})
        self._seismic_search = {k: seismic.pop(k) for k in ("query_cut", "heap_factor") if k in seismic}
        self._seismic_build = seismic
        self.enc_kw = {"batch_size": batch_size, "device": device, "dtype": dtype, "show_progress": show_progress}
        self.index: Any = None
        self.docs: Any = None  # the document vectors when encoded here (explain view)
        self.stats: dict[str, Any] = {}

    @classmethod
    def from_config(cls, cfg: Any) -> "SpladeRetriever":
        """Build from a :class:`unirank.eval.config.RetrieverConfig` (``cfg.splade``)."""
        s = cfg.splade
        return cls(
            s.model,
            index=s.index,
            seismic=s.seismic,
            batch_size=s.batch_size,
            device=s.device,
            dtype=s.dtype,
            store=s.store,
            index_dir=s.index_dir,
            settings=s.settings,
        )

    @property
    def doc_ids(self) -> list[str]:
        return [] if self.index is None else self.index.doc_ids

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        """Encode and index the corpus, or (with a store) open the store and check it covers ``doc_ids``."""
        if self.store:
            self.index = SparseShardedIndex(self.store, self.index_dir, search=self._seismic_search)
            check_vocab(self.index.vocab_fingerprint, self.encoder, self.store)
            have, want = set(self.index.doc_ids), set(doc_ids)
            if have != want:
                raise ConfigError(
                    f"{self.store}: the sparse store and the corpus differ: {len(want - have)} corpus documents "
                    f"missing from the store, {len(have - want)} store documents not in the corpus"
                )
            self.stats = {"doc_nnz": None, "index_bytes": None}
            return
        t0 = time.perf_counter()
        docs = self.encoder.encode_docs(list(texts), **self.enc_kw)
        t1 = time.perf_counter()
        fp = self.encoder.vocab_fingerprint()
        if self.index_kind == "seismic":
            self.index = SeismicIndex(self._seismic_build, self._seismic_search, vocab_fingerprint=fp)
        else:
            self.index = SparseExactIndex(vocab_fingerprint=fp)
        self.index.add(docs, list(doc_ids))
        t2 = time.perf_counter()
        self.docs = docs
        nbytes = int(docs.data.nbytes + docs.indices.nbytes + docs.indptr.nbytes)
        self.stats = {
            "doc_nnz": round(float(np.diff(docs.indptr).mean()), 2) if docs.shape[0] else 0.0,
            "index_bytes": nbytes,
            "encode_docs_s": round(t1 - t0, 3),
            "index_s": round(t2 - t1, 3),
        }

    def encode_queries(self, queries: Sequence[str]) -> Any:
        """The queries' sparse vectors (warns about all-zero ones)."""
        q = self.encoder.encode_queries(list(queries), **self.enc_kw)
        warn_empty_queries(q, "retriever splade")
        return q

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.index is None:
            raise RuntimeError("SpladeRetriever.search before build")
        t0 = time.perf_counter()
        q = self.encode_queries(queries)
        t1 = time.perf_counter()
        out = self.index.search(q, k)
        t2 = time.perf_counter()
        n = max(len(queries), 1)
        self.stats.update(
            {
                "query_nnz": round(float(np.diff(q.indptr).mean()), 2) if q.shape[0] else 0.0,
                "encode_queries_ms_per_query": round(1000 * (t1 - t0) / n, 3),
                "search_ms_per_query": round(1000 * (t2 - t1) / n, 3),
            }
        )
        return out

    def explain(self, queries: Sequence[str], doc_ids: Sequence[Sequence[str]], top: int = 10) -> list[dict[str, Any]]:
        """For each query: its heaviest terms, and per retrieved document its heaviest terms and
        the matched terms (query weight x document weight, largest first, with their share of
        the score).

        Args:
            queries: query texts.
            doc_ids: per query, the retrieved document ids to explain (best first).
            top: terms shown per list.
        """
        if self.docs is None:
            raise RuntimeError("explain needs document vectors encoded by this retriever (not a prebuilt store)")
        row_of = {d: j for j, d in enumerate(self.index.doc_ids)}
        q = self.encoder.encode_queries(list(queries), **{**self.enc_kw, "show_progress": False})
        dec = self.encoder.decode
        out = []
        for r, (text, ids) in enumerate(zip(queries, doc_ids)):
            qi, qw = q.indices[q.indptr[r] : q.indptr[r + 1]], q.data[q.indptr[r] : q.indptr[r + 1]]
            item: dict[str, Any] = {
                "query": text,
                "query_terms": dec(qi, qw, top),
                "query_nnz": int(len(qi)),
                "docs": [],
            }
            qmap = dict(zip(qi.tolist(), qw.tolist()))
            for d in ids:
                j = row_of[d]
                di, dw = (
                    self.docs.indices[self.docs.indptr[j] : self.docs.indptr[j + 1]],
                    self.docs.data[self.docs.indptr[j] : self.docs.indptr[j + 1]],
                )
                contrib = np.array([qmap.get(int(t), 0.0) * float(w) for t, w in zip(di, dw)])
                score = float(contrib.sum())
                matched = [(t, c) for t, c in dec(di, contrib, top) if c > 0]
                item["docs"].append(
                    {
                        "id": d,
                        "score": round(score, 4),
                        "doc_terms": dec(di, dw, top),
                        "doc_nnz": int(len(di)),
                        "matched": [(t, round(c, 4), round(c / score, 3) if score else 0.0) for t, c in matched],
                    }
                )
            out.append(item)
        return out


def explain_markdown(items: Sequence[dict[str, Any]]) -> str:
    """The explain view as markdown (what ``explain.md`` holds)."""
    lines = ["# SPLADE explain view", ""]
    for it in items:
        lines.append(f"## {it['query']}")
        lines.append(
            f"query terms ({it['query_nnz']} non-zero): " + ", ".join(f"{t} {w:.2f}" for t, w in it["query_terms"])
        )
        for d in it["docs"]:
            lines.append(f"- doc `{d['id']}` score {d['score']:.3f} ({d['doc_nnz']} non-zero)")
            lines.append(
                "  - matched: " + (", ".join(f"{t} {c:.2f} ({100 * s:.0f}%)" for t, c, s in d["matched"]) or "(none)")
            )
            lines.append("  - doc terms: " + ", ".join(f"{t} {w:.2f}" for t, w in d["doc_terms"]))
        lines.append("")
    return "\n".join(lines)


def explain_html(items: Sequence[dict[str, Any]]) -> str:
    """The explain view as an HTML section for ``report.html``."""
    e = html.escape
    parts = [
        "<h2>SPLADE explain view</h2><p>Heaviest expansion terms of sample queries and of their top documents; "
        "matched terms with their contribution (query weight x document weight) and share of the score.</p>"
    ]
    for it in items:
        parts.append(
            f"<h3>{e(it['query'])}</h3><p><b>query terms</b> ({it['query_nnz']} non-zero): "
            + ", ".join(f"{e(t)}&nbsp;{w:.2f}" for t, w in it["query_terms"])
            + "</p><ul>"
        )
        for d in it["docs"]:
            parts.append(
                f"<li>doc <code>{e(d['id'])}</code> score {d['score']:.3f} ({d['doc_nnz']} non-zero)<br>"
                "<b>matched</b>: "
                + (", ".join(f"{e(t)}&nbsp;{c:.2f}&nbsp;({100 * s:.0f}%)" for t, c, s in d["matched"]) or "(none)")
                + "<br><b>doc terms</b>: "
                + ", ".join(f"{e(t)}&nbsp;{w:.2f}" for t, w in d["doc_terms"])
                + "</li>"
            )
        parts.append("</ul>")
    return "".join(parts)


@RETRIEVERS.register("fusion")
class FusionRetriever:
    """Reciprocal-rank fusion of several registered retrievers (``retriever.fuse``, e.g.
    ``[splade, bm25, dense]``), each retrieving ``depth`` candidates.

    Args:
        parts: built-or-unbuilt retrievers over the same corpus.
        k_rrf: the RRF constant (60, Cormack et al. 2009).
        depth: candidates per part before fusion (at least ``k``).
    """

    def __init__(
        self, parts: Sequence[Any], k_rrf: float = 60.0, depth: int = 100, names: Sequence[str] | None = None
    ) -> None:
        if len(parts) < 2:
            raise ConfigError("retriever fusion needs at least two retrievers in retriever.fuse")
        self.parts, self.k_rrf, self.depth = list(parts), float(k_rrf), int(depth)
        self.names = list(names) if names is not None else [type(p).__name__ for p in parts]
        self._doc_ids: list[str] = []

    @classmethod
    def from_config(cls, cfg: Any) -> "FusionRetriever":
        names = list(cfg.fuse)
        if "fusion" in names:
            raise ConfigError("retriever.fuse: 'fusion' cannot fuse itself")
        parts = []
        for name in names:
            if name not in RETRIEVERS:
                raise ConfigError(f"retriever.fuse: unknown retriever {name!r}; valid: {', '.join(RETRIEVERS.names())}")
            sub = copy.deepcopy(cfg)
            sub.name = name
            parts.append(RETRIEVERS.get(name).from_config(sub))
        return cls(parts, k_rrf=cfg.k_rrf, names=names)

    @property
    def doc_ids(self) -> list[str]:
        return self._doc_ids

    @property
    def stats(self) -> dict[str, Any]:
        return {
            n: dict(getattr(p, "stats", {}) or {}) for n, p in zip(self.names, self.parts) if getattr(p, "stats", None)
        }

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        self._doc_ids = list(doc_ids)
        for p in self.parts:
            p.build(doc_ids, texts)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        from .base import rrf_fuse

        d = max(k, self.depth)
        row = {x: j for j, x in enumerate(self._doc_ids)}
        runs = []
        for p in self.parts:
            s, i = p.search(queries, d)
            if list(p.doc_ids) != self._doc_ids:  # e.g. a prebuilt store in its own order
                lookup = np.array([row[x] for x in p.doc_ids] + [-1], dtype=np.int64)
                i = lookup[np.where(i >= 0, i, len(p.doc_ids))]
            runs.append((s, i))
        return rrf_fuse(runs, len(self._doc_ids), k, self.k_rrf)
