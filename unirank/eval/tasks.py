"""What ``unirank eval`` runs, by ``EvalConfig.task``: a registry, so the CLI never dispatches on strings.

``retrieval``: first-stage retrieval, and a rerank of its top ``rerank.depth`` when
``rerank.kind`` or ``rerank.model`` is set. ``response``: response selection (R_n@k, MRR).
``budget``: every CUR method and reranked first stage at every cross-encoder budget.
"""

from __future__ import annotations

from typing import Any, Callable

from ..config import to_dict
from ..registry import Registry
from .config import EvalConfig

EVAL_TASKS: Registry[Callable[[EvalConfig], Any]] = Registry("eval task")


@EVAL_TASKS.register("retrieval")
def retrieval_task(cfg: EvalConfig) -> Any:
    from .evaluate import run_eval

    r = cfg.rerank
    if r.kind is None and r.model is None:
        return run_eval(cfg)
    from .rerank import rerank_eval
    from .response import make_ranker

    ranker = make_ranker(r.kind, r.model, r.device)
    return rerank_eval(cfg, ranker, depth=r.depth, chunk_size=r.chunk_size, batch_size=r.batch_size, first_stage=r.first_stage_run,
                       keep_tail=r.keep_tail)


@EVAL_TASKS.register("response")
def response_task(cfg: EvalConfig) -> Any:
    from .response import run_response_eval

    r = cfg.response
    return run_response_eval(
        cfg.data, split=cfg.split, fmt=r.format, data_options=r.data_options, seed=cfg.seed, n_candidates=r.n_candidates,
        kind=r.kind, model=r.model, batch_size=r.batch_size, chunk_size=r.chunk_size, ks=r.ks, device=r.device,
        limit=cfg.limit_queries, out=cfg.out, config=to_dict(cfg),
    )


@EVAL_TASKS.register("budget")
def budget_task(cfg: EvalConfig) -> Any:
    """Cross-encoder budget sweep: CUR methods vs first stage + rerank (unirank.eval.cur_budget)."""
    from .cur_budget import run_budget_eval

    return run_budget_eval(cfg)


def run_task(cfg: EvalConfig) -> Any:
    """Validate ``cfg``, then run ``cfg.task`` through :data:`EVAL_TASKS`."""
    cfg.validate()
    return EVAL_TASKS.get(cfg.task)(cfg)
