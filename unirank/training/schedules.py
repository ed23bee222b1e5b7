"""Learning-rate schedules: pure ``step -> multiplier`` functions, one registry.

Each entry is ``fn(step, warmup, total) -> float``, the factor applied to the base learning
rate *before* optimizer step ``step`` (0-based), as ``torch.optim.lr_scheduler.LambdaLR``
uses it. Warmup is linear from 0; ``linear`` and ``cosine`` reach 0 at ``total``. These are
the formulas of transformers' ``get_linear_schedule_with_warmup`` /
``get_cosine_schedule_with_warmup`` / ``get_constant_schedule_with_warmup``, so a run
compares step for step with a Hugging Face / sentence-transformers trainer. ``noam`` is the
Transformer schedule (Vaswani et al. 2017) as the Uni-Encoder code trains with it: linear
warmup, then the inverse square root of the step, normalised to peak at the base rate.

Example:
    >>> [round(SCHEDULES.get("linear")(s, 2, 6), 2) for s in range(7)]
    [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0]
    >>> [round(SCHEDULES.get("cosine")(s, 0, 4), 2) for s in range(5)]
    [1.0, 0.85, 0.5, 0.15, 0.0]
    >>> [SCHEDULES.get("constant")(s, 2, 6) for s in (0, 1, 5)]
    [0.0, 0.5, 1.0]
    >>> [round(SCHEDULES.get("noam")(s, 4, 100), 3) for s in (0, 3, 4, 15)]
    [0.25, 1.0, 0.894, 0.5]
"""

from __future__ import annotations

import math
from typing import Callable

from ..registry import Registry

__all__ = ["SCHEDULES", "warmup_steps_for"]

#: schedule name -> fn(step, warmup, total) -> lr multiplier
SCHEDULES: Registry[Callable[[int, int, int], float]] = Registry("lr schedule")


def _warm(step: int, warmup: int) -> float | None:
    return step / max(1, warmup) if step < warmup else None


@SCHEDULES.register("linear")
def linear(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1, then linear decay to 0 at ``total``."""
    w = _warm(step, warmup)
    return w if w is not None else max(0.0, (total - step) / max(1, total - warmup))


@SCHEDULES.register("cosine")
def cosine(step: int, warmup: int, total: int) -> float:
    """Linear warmup, then half a cosine from 1 to 0 at ``total``."""
    w = _warm(step, warmup)
    if w is not None:
        return w
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


@SCHEDULES.register("constant")
def constant(step: int, warmup: int, total: int) -> float:
    """Linear warmup, then 1."""
    w = _warm(step, warmup)
    return w if w is not None else 1.0


@SCHEDULES.register("noam")
def noam(step: int, warmup: int, total: int) -> float:
    """``min(n / warmup, sqrt(warmup / n))`` with ``n = step + 1``: up to 1 at ``n = warmup``,
    then ``1 / sqrt(n)`` decay that never reaches 0 (``total`` is not used).

    The official Uni-Encoder code (dll-wu/Uni-Encoder, ``train_dist.py``) multiplies the rate
    by ``d**-0.5 * min(n**-0.5, n * warmup**-1.5)`` for 1-based steps ``n`` after dividing the
    base rate by ``d**-0.5 * warmup**-0.5``; ``d`` cancels, leaving this function. Unlike
    the other schedules it does not start at 0: the first step uses ``1 / warmup`` of the rate.
    """
    n = step + 1
    w = max(1, warmup)
    return min(n / w, math.sqrt(w / n))


def warmup_steps_for(total: int, ratio: float, steps: int | None) -> int:
    """Warmup length: ``steps`` if given, else ``ceil(ratio * total)`` (the Hugging Face rule).

    Example:
        >>> warmup_steps_for(25, 0.1, None), warmup_steps_for(25, 0.1, 4)
        (3, 4)
    """
    return int(steps) if steps is not None else math.ceil(ratio * total)
