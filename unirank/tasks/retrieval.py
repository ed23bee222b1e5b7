"""``retrieval``: queries retrieve documents from a corpus (BEIR folders, built-in data sets).

* training examples: one per judged query of a qrels split (its relevant documents as
  positives, the batch's others as negatives), or a mined ``train.jsonl``;
* the loop's dev/test evaluation: a :class:`~unirank.models.base.DualEncoder` searches the
  whole corpus exactly (:func:`unirank.eval.evaluate.run_eval`); any other ranker reranks the
  top ``rerank_depth`` documents of ``first_stage`` (BM25, computed once per run, or a TREC run
  file) with :func:`unirank.eval.rerank.rerank_eval`;
* ``unirank eval``: first-stage retrieval, and a rerank of its top ``rerank.depth`` when
  ``rerank.kind`` or ``rerank.model`` is set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import SplitEvaluator, Task, register_task


def check_measures(names: Any, key: str) -> None:
    """Each of ``names`` is a metric :func:`unirank.eval.metrics.parse_measure` knows, and
    there is at least one (ConfigError naming ``key``).

    Example:
        >>> check_measures(["ndcg@10", "auc"], "measures")
        >>> check_measures(["ndcg@x"], "test.measures")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: test.measures: unknown metric 'ndcg@x'; valid: auc, map[@k], ...
    """
    from ..eval.metrics import parse_measure

    if isinstance(names, str) or not names:
        raise ConfigError(
            f"{key}: expected a non-empty list of metric names, e.g. [ndcg@10, recall@100], got {names!r}"
        )
    for name in names:
        try:
            parse_measure(str(name))
        except ConfigError as e:
            raise ConfigError(f"{key}: {e}") from None


@register_task("retrieval")
class RetrievalTask(Task):
    default_metric = "ndcg@10"

    def check_train(self, cfg: Any) -> None:
        if cfg.data.options:
            raise ConfigError("data.options are options of the response-data loader; set data.task: response")
        # metric names before training, not after it (a typo once surfaced past the last step)
        for key in ("dev", "test"):
            split = getattr(cfg, key)
            if split.split is not None:
                check_measures(split.measures, f"{key}.measures")
        if cfg.dev.split is not None:
            metric = cfg.dev.metric or self.default_metric
            reported = [*cfg.dev.measures, *(["auc_global"] if "auc" in cfg.dev.measures else [])]
            if metric not in reported:
                raise ConfigError(
                    f"dev.metric: {metric!r} is not one of the dev metrics {reported}; add it to dev.measures or "
                    "pick one of them"
                )

    def check_eval(self, cfg: Any) -> None:
        from ..config import check_devices
        from ..index.config import DENSE_INDEX_KINDS
        from ..models.base import MODELS, import_model_kinds

        check_measures(cfg.measures, "measures")

        if cfg.rerank.first_stage_run is None:
            from ..index.retrievers import RETRIEVERS  # importing it registers every retriever

            if cfg.retriever.name not in RETRIEVERS:
                raise ConfigError(
                    f"retriever.name: unknown retriever {cfg.retriever.name!r}; valid: {', '.join(RETRIEVERS.names())}"
                )
            if cfg.retriever.name in ("dense", "hybrid") and cfg.retriever.dense.index_kind not in DENSE_INDEX_KINDS:
                raise ConfigError(
                    f"retriever.dense.index_kind: {cfg.retriever.dense.index_kind!r} is unknown; valid: "
                    f"{', '.join(DENSE_INDEX_KINDS)} (compressed or HNSW indexes: `unirank index`, then "
                    f"--retriever prebuilt --set retriever.dense.index_dir=DIR)"
                )
        reranking = cfg.rerank.kind is not None or cfg.rerank.model is not None
        if cfg.rerank.first_stage_run is not None and not reranking:
            raise ConfigError(
                "rerank.first_stage_run (--first-stage-run) is the run a reranker reorders; give the reranker "
                "(--reranker KIND and/or --reranker-model DIR), or compare runs with `unirank compare`"
            )
        if cfg.rerank.kind is not None:
            import_model_kinds()
            if cfg.rerank.kind not in MODELS:
                raise ConfigError(
                    f"rerank.kind: unknown model kind {cfg.rerank.kind!r}; valid: {', '.join(MODELS.names())}"
                )
        dense_first_stage = cfg.rerank.first_stage_run is None and cfg.retriever.name != "bm25"
        check_devices(
            {
                "retriever.dense.device": cfg.retriever.dense.device if dense_first_stage else None,
                "rerank.device": cfg.rerank.device if reranking else None,
            }
        )

    # ---- training
    def load_examples(self, data: Any) -> tuple[list, dict[str, Any]]:
        """A mined ``train.jsonl`` when ``data.mined`` is set, else the judged queries of ``data.split``."""
        from ..io import file_sha256
        from ..training.data import examples_from_dataset

        if data.mined:
            from ..negatives.convert import read_mined

            examples = read_mined(data.mined, scores=data.teacher_scores)
            if data.limit_queries is not None:
                examples = examples[: data.limit_queries]
            examples = [e for e in examples if e.positives]
            info = {
                "source": "mined",
                "path": str(data.mined),
                "fingerprint": file_sha256(data.mined),
                "counts": {
                    "queries": len(examples),
                    "positives": sum(len(e.positives) for e in examples),
                    "negatives": sum(len(e.negatives) for e in examples),
                },
            }
            return examples, info
        from ..data.datasets import load_dataset

        ds = load_dataset(data.train, split=data.split)
        examples, counts = examples_from_dataset(ds, data.limit_queries)
        return examples, {
            "source": "qrels",
            "name": ds.name,
            "split": ds.split,
            "fingerprint": ds.fingerprint,
            "counts": counts,
        }

    # ---- the loop's evaluation
    def load_split(self, data: str, split: str, options: dict[str, Any]) -> Any:
        from ..data.datasets import load_dataset

        return load_dataset(data, split=split)

    def split_fingerprint(self, dataset: Any) -> str:
        return dataset.fingerprint

    def evaluate_split(self, ev: SplitEvaluator, model: Any, out: Path | None) -> dict[str, float]:
        from ..eval.config import EvalConfig
        from ..index.config import RetrieverConfig
        from ..models.base import DualEncoder

        cfg = ev.cfg
        ecfg = EvalConfig(
            data=ev.data,
            split=cfg.split,
            retriever=RetrieverConfig(name="dense"),
            k=100,
            measures=list(cfg.measures),
            limit_queries=cfg.limit_queries,
            max_docs=cfg.max_docs,
            out=str(out) if out else None,
        )
        if isinstance(model, DualEncoder):
            from ..eval.evaluate import run_eval
            from ..index.retrievers import retriever_for

            retriever = retriever_for(model, batch_size=cfg.batch_size, device=str(ev.device), show_progress=False)
            return run_eval(ecfg, dataset=ev.dataset, retriever=retriever, quiet=True).metrics
        from ..eval.rerank import rerank_eval

        _, result = rerank_eval(
            ecfg,
            model,
            depth=cfg.rerank_depth,
            batch_size=max(1, cfg.batch_size // 4),
            dataset=ev.dataset,
            first_stage=_first_stage(ev, ecfg),
            quiet=True,
            progress=False,
        )
        return result.metrics

    # ---- unirank eval
    def run_eval(self, cfg: Any) -> Any:
        from ..eval.evaluate import run_eval

        r = cfg.rerank
        if r.kind is None and r.model is None:
            return run_eval(cfg)
        from ..eval.rerank import rerank_eval
        from ..models.base import load_ranker

        ranker = load_ranker(r.model, r.kind, device=r.device, backend=r.backend)
        return rerank_eval(
            cfg,
            ranker,
            depth=r.depth,
            chunk_size=r.chunk_size,
            batch_size=r.batch_size,
            first_stage=r.first_stage_run,
            keep_tail=r.keep_tail,
        )


def _first_stage(ev: SplitEvaluator, ecfg: Any) -> Any:
    """The run a reranker reorders: a TREC file, or BM25 over the split's corpus (computed once per run)."""
    if "first_stage" not in ev.cache:
        if ev.cfg.first_stage != "bm25":  # a TREC run file (TrainConfig.validate checked it exists)
            from ..data.trec import read_run

            ev.cache["first_stage"] = read_run(ev.cfg.first_stage)
        else:
            from ..eval.evaluate import limit_split, retrieve, subsample_corpus
            from ..index.config import RetrieverConfig
            from ..index.retrievers import make_retriever

            ds = subsample_corpus(limit_split(ev.dataset, ecfg.limit_queries), ecfg.max_docs)
            ev.cache["first_stage"], _ = retrieve(ds, make_retriever(RetrieverConfig(name="bm25")), ev.cfg.rerank_depth)
    return ev.cache["first_stage"]
