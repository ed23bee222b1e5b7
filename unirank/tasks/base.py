"""What a task is: its training examples, its splits, its evaluation and its config checks.

A *task* says what a model is trained and judged on. Training (``unirank train``,
``data.task``) and evaluation (``unirank eval``, ``task``) resolve it through one registry,
:data:`TASKS`, so neither dispatches on the task's name (in the manner of Tevatron's
benchmark registry). Built-in tasks, one file each:

* ``retrieval`` (:mod:`unirank.tasks.retrieval`) - a query retrieves documents from a corpus
  (BEIR folders); a dual encoder searches the corpus, any other ranker reranks a first stage.
* ``response`` (:mod:`unirank.tasks.response`) - response selection: each dialogue context
  ranks its own candidate replies (R_n@k, MRR).
* ``budget`` (:mod:`unirank.tasks.budget`) - evaluation only: cross-encoder-only search
  (ANNCUR, adaCUR) against retrieve-and-rerank at each cross-encoder budget.

A new task is one file with a :class:`Task` subclass registered by ``@register_task("name")``
and its module name added to ``_TASK_MODULES``.

Example:
    >>> get_task("response").default_metric
    'mrr'
    >>> get_task("chat", key="data.task")
    Traceback (most recent call last):
    ...
    unirank.errors.ConfigError: data.task: unknown task 'chat'; valid: budget, response, retrieval
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from ..errors import ConfigError
from ..registry import Registry

if TYPE_CHECKING:  # type hints only: the config modules never import this package at run time
    import torch

    from ..eval.config import EvalConfig
    from ..training.config import DataConfig, EvalSplitConfig, TrainConfig
    from ..types import TrainExample

__all__ = ["Task", "SplitEvaluator", "TASKS", "register_task", "get_task", "run_eval_task"]

#: task name -> the task (an instance; tasks hold no state)
TASKS: Registry["Task"] = Registry("task")

_TASK_MODULES = ("retrieval", "response", "budget")


def register_task(name: str) -> Callable[[type["Task"]], type["Task"]]:
    """Class decorator: register an instance of the class as ``name`` in :data:`TASKS`."""

    def deco(cls: type[Task]) -> type[Task]:
        cls.name = name
        TASKS.register(name)(cls())
        return cls

    return deco


def get_task(name: str, key: str = "task") -> "Task":
    """The task registered as ``name`` (built-in task modules are imported on first use).

    Raises:
        ConfigError: unknown name; the message starts with the config ``key``.
    """
    import importlib

    for m in _TASK_MODULES:
        importlib.import_module(f"{__package__}.{m}")
    try:
        return TASKS.get(name)
    except KeyError as e:
        raise ConfigError(f"{key}: {e.args[0]}") from None


class Task:
    """One task: subclasses implement the loading and evaluation methods.

    Attributes:
        name: the registered name (set by :func:`register_task`).
        default_metric: the dev metric that picks the best checkpoint when ``dev.metric`` is unset.
    """

    name: ClassVar[str] = "?"
    default_metric: ClassVar[str] = "?"

    # ---- config checks (before any work)
    def check_train(self, cfg: "TrainConfig") -> None:
        """Task-specific checks of a training config (ConfigError naming the key)."""

    def check_eval(self, cfg: "EvalConfig") -> None:
        """Task-specific checks of an evaluation config (ConfigError naming the key)."""

    # ---- training
    def load_examples(self, data: "DataConfig") -> tuple[list["TrainExample"], dict[str, Any]]:
        """The training examples of ``data`` and their provenance (source, fingerprint, counts)."""
        raise NotImplementedError

    # ---- the loop's dev / test evaluation
    def evaluator(self, split: "EvalSplitConfig", data: "DataConfig", device: "torch.device") -> "SplitEvaluator":
        """The evaluation the training loop runs on ``split`` (data loaded once, on first use)."""
        return SplitEvaluator(self, split, data, device)

    def load_split(self, data: str, split: str, options: dict[str, Any]) -> Any:
        """Load one evaluation split (``options``: the training data's loader options)."""
        raise NotImplementedError

    def split_fingerprint(self, dataset: Any) -> str:
        """A fingerprint of a loaded split (for provenance.json)."""
        raise NotImplementedError

    def evaluate_split(self, ev: "SplitEvaluator", model: Any, out: Path | None) -> dict[str, float]:
        """Metrics of ``model`` on ``ev.dataset``; writes the run / scores into ``out`` when given."""
        raise NotImplementedError

    # ---- unirank eval
    def run_eval(self, cfg: "EvalConfig") -> Any:
        """What ``unirank eval`` runs for this task (``cfg`` already checked)."""
        raise NotImplementedError


class SplitEvaluator:
    """The training loop's evaluation of one split (dev after each epoch, test at the end).

    Args:
        task: the task it evaluates.
        split: the split's settings (``split.split`` None: disabled).
        data: the training data settings (``split.data`` None: ``data.train``; loader options).
        device: where the model runs.
    """

    def __init__(self, task: Task, split: "EvalSplitConfig", data: "DataConfig", device: "torch.device") -> None:
        self.task, self.cfg, self.device = task, split, device
        self.data = split.data or data.train
        self.options = dict(data.options)
        self.cache: dict[str, Any] = {}  # what a task computes once per run (e.g. a first stage)
        self._dataset: Any = None

    @property
    def enabled(self) -> bool:
        return self.cfg.split is not None

    @property
    def metric(self) -> str:
        return self.cfg.metric or self.task.default_metric

    @property
    def dataset(self) -> Any:
        if self._dataset is None:
            self._dataset = self.task.load_split(self.data, self.cfg.split, self.options)
        return self._dataset

    def fingerprint(self) -> str | None:
        return self.task.split_fingerprint(self.dataset) if self.enabled else None

    def __call__(self, model: Any, out: Path | None = None) -> dict[str, float] | None:
        return self.task.evaluate_split(self, model, out) if self.enabled else None


def run_eval_task(cfg: "EvalConfig") -> Any:
    """``unirank eval``: check ``cfg`` (generic, then the task's own checks), then run its task."""
    cfg.validate()
    task = get_task(cfg.task, key="task")
    task.check_eval(cfg)
    return task.run_eval(cfg)
