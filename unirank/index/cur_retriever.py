"""The ``cur`` retriever: k-NN search with the cross-encoder alone (ANNCUR or adaCUR).

``unirank eval --retriever cur --set retriever.cur.index=IX --set retriever.cur.budget=100``
(and ``unirank serve --retriever cur --set cur.index=IX``) search a CUR index built by
``unirank index --kind cur`` (:mod:`unirank.index.cur_store`). Each query costs exactly
``retriever.cur.budget`` cross-encoder calls (fewer when the corpus is smaller); the hits
are the scored documents by exact cross-encoder score, then - with ``keep_tail`` - the
others by the final CUR approximation (no further calls).

The method is a :data:`CUR_METHODS` name:

* ``anncur`` - ``anchors`` items (default ``budget // 2``) drawn with ``seed`` and shared by
  all queries; their item embeddings ``E = pinv(R[:, A]) R`` sit in a FAISS index (cached in
  the index folder); the other ``budget - anchors`` calls go to the best items under ``s E``.
* ``adacur`` - ``rounds`` rounds of ``budget / rounds`` items: round 1 seeded random (or a
  first stage's top items), each later round the best unscored items under the
  approximation re-solved (incrementally) from every item scored so far.

With ``first_stage: bm25`` (or any retriever name) round 1 / the anchors are that
retriever's top documents for each query instead of random ones.

Example:
    >>> check_cur_config(CURConfig(method="cure"))
    Traceback (most recent call last):
    ...
    unirank.errors.ConfigError: retriever.cur.method: unknown CUR method 'cure'; valid: adacur, anncur
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..registry import Registry
from .base import RETRIEVERS
from .config import CURConfig
from .cur import CURResult, ScoreFn, adacur_search, anncur_search, choose_anchors, result_hits, round_plan

__all__ = ["CURConfig", "check_cur_config", "CUR_METHODS", "CURContext", "CURRetriever", "first_stage_lists"]


@dataclass
class CURContext:
    """What a CUR method needs besides the cross-encoder.

    Attributes:
        index: the :class:`~unirank.index.cur_store.CURIndex`.
        config: the settings (budget, anchors, rounds, seed, rcond).
        first: per query, a first stage's ranking in index order (round 1 / anchors), or
            ``None`` for seeded random items.
        space: the items as an :class:`~unirank.index.cur.ItemSpace` (made on first use).
    """

    index: Any
    config: CURConfig
    first: list[np.ndarray] | None = None
    _space: Any = None

    @property
    def space(self) -> Any:
        if self._space is None:
            self._space = self.index.space(self.config.index_dir)
        return self._space


#: CUR method name -> ``method(ctx, score, n_queries, tail) -> CURResult``
CUR_METHODS: Registry[Callable[[CURContext, ScoreFn, int, int], CURResult]] = Registry("CUR method")


def check_cur_config(cfg: CURConfig) -> None:
    """``cfg.validate()``, and ``cfg.method`` checked against :data:`CUR_METHODS`."""
    if cfg.method not in CUR_METHODS:
        raise ConfigError(
            f"retriever.cur.method: unknown CUR method {cfg.method!r}; valid: {', '.join(CUR_METHODS.names())}"
        )
    cfg.validate()


def check_cur_retriever_config(cfg: CURConfig) -> None:
    """:func:`check_cur_config`, and ``cfg.index`` names a CUR index folder (its ``cur.json``),
    so ``unirank serve --retriever cur`` fails before the server starts."""
    from .cur_store import cur_index_file

    check_cur_config(cfg)
    if not cfg.index:
        raise ConfigError("retriever cur needs retriever.cur.index (a folder written by `unirank index --kind cur`)")
    cur_index_file(cfg.index)


def _first_round(ctx: CURContext, n_queries: int, size: int) -> list[np.ndarray]:
    if ctx.first is not None:
        return ctx.first
    return [choose_anchors(ctx.index.n_items, size, ctx.config.seed)] * n_queries


@CUR_METHODS.register("anncur")
def anncur_method(ctx: CURContext, score: ScoreFn, n_queries: int, tail: int) -> CURResult:
    """ANNCUR (Yadav et al. 2022): fixed anchor items, one retrieval by ``s @ E``."""
    cfg, m = ctx.config, ctx.index.n_items
    budget = min(cfg.budget, m)
    k_i = min(cfg.anchor_count(), budget)
    if ctx.first is None:  # the same anchors for every query: E = U R precomputed in FAISS
        anchors = choose_anchors(m, k_i, cfg.seed)
        emb = ctx.index.item_embeddings(anchors, cfg.rcond)
        return anncur_search(score, anchors, emb.search, n_queries, budget, m, tail)
    plan = [k_i] + ([budget - k_i] if budget > k_i else [])  # per-query anchors: solved per query
    return adacur_search(score, ctx.space, ctx.first, plan, tail, cfg.rcond)


@CUR_METHODS.register("adacur")
def adacur_method(ctx: CURContext, score: ScoreFn, n_queries: int, tail: int) -> CURResult:
    """adaCUR (Yadav et al. 2023): the budget in ``rounds`` adaptive rounds."""
    cfg = ctx.config
    budget = min(cfg.budget, ctx.index.n_items)
    plan = round_plan(budget, min(cfg.rounds, budget))
    return adacur_search(score, ctx.space, _first_round(ctx, n_queries, plan[0]), plan, tail, cfg.rcond)


def first_stage_lists(
    hit_indices: np.ndarray, first_doc_ids: Sequence[str], index_doc_ids: Sequence[str], seed: int = 0
) -> list[np.ndarray]:
    """A first stage's hits (rows into ``first_doc_ids``) as rankings of index positions,
    each followed by the other documents in a seeded random order (so round 1 can always be
    filled, even when the first stage returned fewer documents).

    Example:
        >>> row = first_stage_lists(np.array([[1, -1]]), ["a", "b"], ["b", "a", "c"])[0]
        >>> int(row[0]), sorted(row.tolist())     # "b" first (index position 0), then the rest
        (0, [0, 1, 2])
    """
    pos = {d: i for i, d in enumerate(index_doc_ids)}
    order = np.random.default_rng(seed).permutation(len(index_doc_ids))
    out = []
    for row in hit_indices:
        head = np.array([pos[first_doc_ids[j]] for j in row if j >= 0], dtype=np.int64)
        out.append(np.concatenate([head, order[~np.isin(order, head)]]))
    return out


@RETRIEVERS.register("cur")
class CURRetriever:
    """Search a CUR index with its cross-encoder (``build`` checks the corpus; nothing is encoded).

    Args:
        index: a :class:`~unirank.index.cur_store.CURIndex` or its folder.
        config: :class:`CURConfig` (method, budget, ...).
        ranker: the cross-encoder (default: ``config.model``, else the one the index records);
            it must be the one the index was built with.
        first_stage: a built-on-``build`` retriever whose top documents seed round 1.
        progress: tqdm bars while scoring.

    After :meth:`search`, :attr:`stats` holds the cross-encoder calls made.
    """

    def __init__(
        self,
        index: Any,
        config: CURConfig | None = None,
        ranker: Any = None,
        first_stage: Any = None,
        progress: bool | None = False,
    ) -> None:
        from .cur_store import CURIndex

        self.config = config or CURConfig()
        check_cur_config(self.config)
        self.index = index if isinstance(index, CURIndex) else CURIndex(index)
        self.ranker = ranker
        if ranker is not None:
            self.index.check_ranker(ranker)
        self.first_stage = first_stage
        self.progress = progress
        self.texts: list[str] | None = None
        self.stats: dict[str, Any] = {}
        self._ctx = CURContext(self.index, self.config)

    @classmethod
    def from_config(cls, cfg: Any) -> "CURRetriever":
        """From a RetrieverConfig: ``cfg.cur`` (its ``first_stage`` built from ``cfg``'s other sections)."""
        c = cfg.cur
        check_cur_retriever_config(c)
        first = None
        if c.first_stage:
            first = RETRIEVERS.get(c.first_stage).from_config(dataclasses.replace(cfg, name=c.first_stage))
        return cls(c.index, c, first_stage=first, progress=None)

    @property
    def doc_ids(self) -> list[str]:
        return self.index.doc_ids

    def _ensure_ranker(self) -> Any:
        if self.ranker is None:
            from ..models.base import load_ranker

            source = self.config.model or self.index.meta["ranker"].get("source")
            if not source:
                raise ConfigError(
                    f"{self.index.folder}: the index does not record where its cross-encoder came from; "
                    "set retriever.cur.model"
                )
            ranker = load_ranker(source, "cross", device=self.config.device)
            self.index.check_ranker(ranker)
            self.ranker = ranker
        return self.ranker

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        """Check that ``(doc_ids, texts)`` is the indexed corpus, keep the texts, load the model."""
        self.index.check_corpus(doc_ids, texts)
        by_id = dict(zip(doc_ids, texts))
        self.texts = [by_id[d] for d in self.index.doc_ids]
        if self.first_stage is not None:
            self.first_stage.build(list(self.index.doc_ids), self.texts)
        self._ensure_ranker()

    def scorer(self, queries: Sequence[str]) -> ScoreFn:
        """The cross-encoder as a :data:`~unirank.index.cur.ScoreFn` for ``queries`` (counts calls)."""
        from ..eval.response import score_lists

        if self.texts is None:
            raise ConfigError("CURRetriever.search before build(): build it on its corpus first")
        ranker, texts = self._ensure_ranker(), self.texts

        def score(requests: Sequence[np.ndarray]) -> list[np.ndarray]:
            rows = [q for q, r in enumerate(requests) if len(r)]
            got = score_lists(
                ranker,
                [queries[q] for q in rows],
                [[texts[j] for j in requests[q]] for q in rows],
                batch_size=self.config.batch_size,
                chunk_size=self.config.chunk_size,
                progress=self.progress,
                desc="cur",
            )
            out = [np.empty(0, dtype=np.float64) for _ in requests]
            for q, s in zip(rows, got):
                out[q] = np.asarray(s, dtype=np.float64)
            return out

        return score

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` per query: ``(scores, indices)`` (Q, k), indices into :attr:`doc_ids`."""
        queries = list(queries)
        t0 = time.perf_counter()
        first = None
        if self.first_stage is not None and queries:
            _, hits = self.first_stage.search(queries, min(self.config.budget, self.index.n_items))
            first = first_stage_lists(hits, self.first_stage.doc_ids, self.index.doc_ids, self.config.seed)
        self._ctx.first = first
        result = CUR_METHODS.get(self.config.method)(
            self._ctx, self.scorer(queries), len(queries), k if self.config.keep_tail else 0
        )
        calls = result.calls
        self.stats = {
            "method": self.config.method,
            "budget": self.config.budget,
            "queries": len(queries),
            "ce_calls_total": int(calls.sum()),
            "ce_calls_per_query": float(calls.mean()) if len(calls) else 0.0,
            "rounds": result.rounds[0] if result.rounds else [],
            "search_s": round(time.perf_counter() - t0, 3),
            "index": str(self.index.folder),
            "index_cost": self.index.cost(),
        }
        return result_hits(result, k)
