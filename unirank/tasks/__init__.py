"""Tasks (retrieval, response selection): see :mod:`unirank.tasks.base`."""

from .base import TASKS, SplitEvaluator, Task, get_task, register_task, run_eval_task

__all__ = ["TASKS", "SplitEvaluator", "Task", "get_task", "register_task", "run_eval_task"]
