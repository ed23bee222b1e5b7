"""``response``: response selection - each dialogue context ranks its own candidate replies.

* training examples: one per context (MuTual, DailyDialog R10, TSV, JSONL or a task folder;
  :func:`unirank.data.dialogue.load_response_data`), the context as a tuple of turns, its
  correct replies as positives and the other candidates as its negatives;
* the loop's dev/test evaluation and ``unirank eval --task response``: every context's
  candidates scored, R_n@k and MRR (:func:`unirank.eval.response.evaluate_response`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import SplitEvaluator, Task, register_task


def _builtin_response_name(name: str) -> bool:
    """True for a built-in response data set name (``mutual``, ``dailydialog``) that is not a path."""
    from ..data.dialogue import RESPONSE_DATASETS

    return name in RESPONSE_DATASETS and not Path(name).exists()


@register_task("response")
class ResponseTask(Task):
    default_metric = "mrr"

    def check_train(self, cfg: Any) -> None:
        if cfg.data.mined:
            raise ConfigError(
                "data.mined and data.task response exclude each other: response data brings its own negatives"
            )
        if cfg.refresh.every_steps:
            raise ConfigError(
                "refresh.every_steps (ANCE re-mining) needs retrieval data (a corpus to mine); data.task is response"
            )
        metric = cfg.dev.metric or self.default_metric
        if cfg.dev.split is not None and not re.fullmatch(r"mrr|R\d+@\d+", metric):
            raise ConfigError(
                f"dev.metric: {metric!r} is not a response-selection metric; valid: mrr, R<n>@<k> "
                "(n = the data's candidates per context, e.g. R10@1)"
            )
        if not _builtin_response_name(cfg.data.train):
            for key in ("dev", "test"):
                split = getattr(cfg, key)
                if split.split is not None and split.data is None:
                    raise ConfigError(
                        f"{key}.data: response data given as a path ({cfg.data.train}) has no splits; name the "
                        f"{key} file or folder in {key}.data, or set {key}.split: null"
                    )

    def check_eval(self, cfg: Any) -> None:
        from ..config import check_devices
        from ..models.base import MODELS, import_model_kinds

        if cfg.response.kind is not None:
            import_model_kinds()
            if cfg.response.kind not in MODELS:
                raise ConfigError(
                    f"response.kind: unknown model kind {cfg.response.kind!r}; valid: {', '.join(MODELS.names())}"
                )
        check_devices({"response.device": cfg.response.device})

    # ---- training
    def load_examples(self, data: Any) -> tuple[list, dict[str, Any]]:
        from ..data.dialogue import examples_fingerprint, load_response_data
        from ..training.data import examples_from_dialogues

        task = load_response_data(data.train, split=data.split, **data.options)
        dialogues = task.examples[: data.limit_queries] if data.limit_queries is not None else task.examples
        examples, counts = examples_from_dialogues(dialogues)
        return examples, {
            "source": "response",
            "name": str(data.train),
            "split": data.split,
            "options": dict(data.options),
            "fingerprint": examples_fingerprint(dialogues),
            "counts": counts,
            "manifest_counts": task.manifest.get("counts"),
        }

    # ---- the loop's evaluation
    def load_split(self, data: str, split: str, options: dict[str, Any]) -> Any:
        from ..data.dialogue import load_response_data

        return load_response_data(data, split=split, **options)

    def split_fingerprint(self, dataset: Any) -> str:
        from ..data.dialogue import examples_fingerprint

        return examples_fingerprint(dataset.examples)

    def evaluate_split(self, ev: SplitEvaluator, model: Any, out: Path | None) -> dict[str, float]:
        from ..eval.response import evaluate_response, write_response_outputs

        examples = ev.dataset.examples
        if ev.cfg.limit_queries is not None:
            examples = examples[: ev.cfg.limit_queries]
        metrics, scores = evaluate_response(model, examples, batch_size=max(1, ev.cfg.batch_size // 4), progress=False)
        if out is not None:
            write_response_outputs(
                out, examples, scores, metrics, {"data": ev.data, "split": ev.cfg.split, "options": ev.options}
            )
        return metrics

    # ---- unirank eval
    def run_eval(self, cfg: Any) -> Any:
        from ..eval.response import run_response_eval

        return run_response_eval(cfg)
