"""``budget``: cross-encoder-only k-NN search against retrieve-and-rerank at equal cost (issue 16).

An evaluation-only task (nothing is trained on it): ``unirank eval --task budget`` runs every
CUR method (``retriever.cur.methods``: ANNCUR, adaCUR) on the CUR index
``retriever.cur.index`` and every first stage of ``retriever.cur.baselines`` (BM25, dense)
reranked top-B by the same cross-encoder, at each budget B of ``retriever.cur.budgets``
cross-encoder calls per query, against the exhaustive cross-encoder ranking (Top-k-Recall) and
the qrels (:func:`unirank.eval.cur_budget.run_budget_eval`; report.html plots recall against
cross-encoder calls).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import Task, register_task


@register_task("budget")
class BudgetTask(Task):
    default_metric = "top10_recall"

    def check_train(self, cfg: Any) -> None:
        raise ConfigError(
            "data.task: budget is an evaluation task (unirank eval --task budget); train with retrieval or response"
        )

    def check_eval(self, cfg: Any) -> None:
        from ..config import check_devices
        from ..eval.cur_budget import check_budget_config

        check_budget_config(cfg)
        c = cfg.retriever.cur
        uses_dense = "dense" in c.baselines or c.first_stage in ("dense", "hybrid")
        check_devices(
            {
                "retriever.cur.device": c.device,
                "retriever.dense.device": cfg.retriever.dense.device if uses_dense else None,
            }
        )

    def run_eval(self, cfg: Any) -> Any:
        from ..eval.cur_budget import run_budget_eval

        return run_budget_eval(cfg)
