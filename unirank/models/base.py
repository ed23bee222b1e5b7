"""The model registry and the interface every paradigm (bi, poly, cross, uni) implements.

A *ranker* scores candidate texts for a context (a query, or dialogue turns oldest first).
All paradigms share one backbone loader (:mod:`unirank.models.backbone`) and one
scoring contract so that training, evaluation and serving never dispatch on the kind.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

from ..registry import Registry

#: a query string, or a dialogue context as a list of turns (oldest first)
Context = Union[str, Sequence[str]]

#: model kind name -> Ranker subclass (classes register themselves: ``@MODELS.register("uni")``)
MODELS: Registry[type["Ranker"]] = Registry("model kind")


_KIND_MODULES = ("bi", "cross", "poly", "uni", "splade")


def import_model_kinds() -> None:
    """Import the built-in model modules so that every kind is registered in :data:`MODELS`."""
    import importlib

    for m in _KIND_MODULES:
        importlib.import_module(f"{__package__}.{m}")


def model_class(kind: str) -> type["Ranker"]:
    """The Ranker class registered as ``kind`` (imports the built-in model modules on first use).

    Example:
        >>> model_class("uni").__name__
        'UniEncoder'
    """
    import_model_kinds()
    return MODELS.get(kind)


class Ranker(nn.Module):
    """Interface of every paradigm.

    ``score(contexts, candidates)`` is differentiable and used by training; ``rank`` is the
    no-grad inference entry point (chunks long candidate lists).
    """

    kind: str = "?"

    def score(self, contexts: Sequence[Context], candidates: Sequence[Sequence[str]]) -> torch.Tensor:
        """Scores for each context's candidates.

        Shapes: B contexts, candidates[b] has N_b texts -> (B, max N_b) float tensor; slots past
        N_b hold ``-inf``.
        """
        raise NotImplementedError

    @torch.inference_mode()
    def rank(self, context: Context, candidates: Sequence[str], chunk_size: int = 64) -> list[float]:
        """Score one context's candidates, ``chunk_size`` at a time; returns one float each."""
        out: list[float] = []
        for i in range(0, len(candidates), chunk_size):
            out.extend(self.score([context], [list(candidates[i : i + chunk_size])])[0].tolist())
        return out

    def save(self, path: str) -> None:
        raise NotImplementedError
