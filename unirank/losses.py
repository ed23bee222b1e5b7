"""Training losses: pure functions on score tensors, one registry, one calling convention.

Every loss is ``fn(inputs: LossInputs, **params) -> Tensor`` (a differentiable scalar) and is
registered in :data:`LOSSES`. :func:`combine` turns a config mapping such as
``{"infonce": 1.0, "mw": {"weight": 0.5, "pairing": "global"}}`` into the weighted total, so
the training loop never dispatches on loss names.

Score layout
------------
``scores`` is ``(B, N)``: row ``b`` holds query ``b``'s scores against ``N`` candidate columns.
The losses read *only the masks*, so any layout works:

* **shared pool** (bi-encoder with in-batch negatives): the columns are every document in the
  batch. Use the *positives-first* order of sentence-transformers'
  ``MultipleNegativesRankingLoss``: column ``i < B`` is query ``i``'s positive, then the mined
  negatives of all queries. Only ``infonce(symmetric=True)`` relies on this order.
* **per-query lists** (cross-encoder, poly-encoder, Uni-Encoder, response selection): column
  ``j`` of row ``b`` is query ``b``'s own ``j``-th candidate; pad short lists and mark the
  padding invalid (a ``-inf`` pad as written by ``Ranker.score`` is fine).

Masks: ``positive_mask`` marks relevant entries (several per row are allowed); ``valid_mask``
marks entries that take part at all (padding and excluded in-batch items such as duplicates
or false negatives are ``False``). A *negative* is a valid entry that is not positive. Entries
outside ``valid_mask`` never contribute: their values may be anything (``inf``, ``nan``) and
receive zero gradient. Teacher scores are detached; ``nan`` (any non-finite value) marks a
missing teacher score.

Reduction: every loss averages inside a row first (over its pairs or positives) and then over
the rows that *count* (each loss says which); rows that do not count are skipped. When no row
counts the loss is a zero that is still connected to ``scores`` (``backward()`` works and
gives zero gradients).

Example:
    >>> import torch
    >>> s = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.5]])
    >>> inputs = LossInputs(s, positive_mask=torch.eye(2, 3, dtype=torch.bool))
    >>> total, parts = combine({"infonce": 1.0, "mw": {"weight": 0.5, "scale": 1.0}}, inputs)
    >>> sorted(parts)
    ['infonce', 'mw']
    >>> bool(torch.isclose(total, parts["infonce"] + 0.5 * parts["mw"]))
    True
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError
from .registry import Registry

__all__ = [
    "LOSSES",
    "LossFn",
    "LossInputs",
    "combine",
    "resolve_loss_weights",
    "infonce",
    "ce",
    "mw",
    "margin_mse",
    "kl",
    "cprd",
    "multi_positive",
    "flops",
    "l1",
    "quadratic_warmup",
]

#: A registered loss: ``fn(inputs, **params) -> scalar Tensor``.
LossFn = Callable[..., Tensor]

#: loss name -> loss function (``@LOSSES.register("name")``).
LOSSES: Registry[LossFn] = Registry("loss")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class LossInputs:
    """Everything a loss may read, for one batch.

    Args:
        scores: student scores, query rows x candidate columns (see the module docstring).
        positive_mask: ``True`` where the candidate is relevant to the row's query.
        valid_mask: ``True`` where the entry takes part; ``None`` means all entries.
        teacher_scores: teacher scores for the same entries; ``nan`` where missing. Detached.
        hard_negative_mask: ``True`` on mined hard negatives (used by ``cprd``).
        doc_scores: scores for the document->query direction of ``infonce(symmetric=True)``:
            ``doc_scores[i, j]`` scores column ``i``'s document against query ``j``
            (positives-first layout). ``None`` means ``scores[:, :B].T``.
        query_reps, doc_reps: the representations the scores came from (a SPLADE model's
            vocabulary-sized vectors), read by the regularisers ``flops`` and ``l1``.
        step: optimizer steps taken before this batch (regulariser warm-up).

    Shapes:
        scores, positive_mask, valid_mask, teacher_scores, hard_negative_mask: ``(B, N)``;
        doc_scores: ``(B, B)`` with ``N >= B``.

    Example:
        >>> x = LossInputs(torch.zeros(2, 3), torch.tensor([[True, False, False]] * 2))
        >>> x.valid_mask.all().item(), tuple(x.negative_mask.sum(1).tolist())
        (True, (2, 2))
        >>> LossInputs(torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.bool))
        Traceback (most recent call last):
        ...
        ValueError: LossInputs.positive_mask: expected a bool tensor of shape (2, 3), got torch.bool (2, 2)
    """

    scores: Tensor
    positive_mask: Tensor
    valid_mask: Tensor | None = None
    teacher_scores: Tensor | None = None
    hard_negative_mask: Tensor | None = None
    doc_scores: Tensor | None = None
    query_reps: Tensor | None = None
    doc_reps: Tensor | None = None
    step: int | None = None

    def __post_init__(self) -> None:
        s = self.scores
        if not isinstance(s, Tensor) or s.dim() != 2 or not s.is_floating_point():
            got = f"{s.dtype} {tuple(s.shape)}" if isinstance(s, Tensor) else type(s).__name__
            raise ValueError(f"LossInputs.scores: expected a 2-D float tensor (B, N), got {got}")
        if self.valid_mask is None:
            object.__setattr__(self, "valid_mask", torch.ones_like(s, dtype=torch.bool))
        for name in ("positive_mask", "valid_mask", "hard_negative_mask"):
            m = getattr(self, name)
            if m is not None and (not isinstance(m, Tensor) or m.dtype != torch.bool or m.shape != s.shape):
                got = f"{m.dtype} {tuple(m.shape)}" if isinstance(m, Tensor) else type(m).__name__
                raise ValueError(f"LossInputs.{name}: expected a bool tensor of shape {tuple(s.shape)}, got {got}")
        t = self.teacher_scores
        if t is not None and (not isinstance(t, Tensor) or not t.is_floating_point() or t.shape != s.shape):
            got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"LossInputs.teacher_scores: expected a float tensor of shape {tuple(s.shape)}, got {got}")
        d = self.doc_scores
        b, n = s.shape
        if d is not None and (not isinstance(d, Tensor) or not d.is_floating_point() or d.shape != (b, b)):
            got = f"{d.dtype} {tuple(d.shape)}" if isinstance(d, Tensor) else type(d).__name__
            raise ValueError(f"LossInputs.doc_scores: expected a float tensor of shape {(b, b)}, got {got}")
        for name in ("query_reps", "doc_reps"):
            r = getattr(self, name)
            if r is not None and (not isinstance(r, Tensor) or r.dim() != 2 or not r.is_floating_point()):
                got = f"{r.dtype} {tuple(r.shape)}" if isinstance(r, Tensor) else type(r).__name__
                raise ValueError(f"LossInputs.{name}: expected a 2-D float tensor (N, V), got {got}")

    @classmethod
    def from_targets(cls, scores: Tensor, targets: Tensor, ignore_index: int = -100, **kwargs: Any) -> "LossInputs":
        """Inputs with one positive per row given by column index (``F.cross_entropy`` style).

        Args:
            scores: ``(B, N)`` scores.
            targets: ``(B,)`` long column index of each row's positive; ``ignore_index`` gives
                the row no positive (so it is skipped).
            **kwargs: the other :class:`LossInputs` fields.

        Example:
            >>> x = LossInputs.from_targets(torch.zeros(3, 2), torch.tensor([1, 0, -100]))
            >>> x.positive_mask.tolist()
            [[False, True], [True, False], [False, False]]
        """
        cols = torch.arange(scores.shape[1], device=scores.device)
        return cls(scores, positive_mask=targets.to(scores.device)[:, None] == cols[None, :], **kwargs)

    @property
    def pos(self) -> Tensor:
        """Valid positives ``(B, N)``."""
        return self.positive_mask & self.valid_mask

    @property
    def negative_mask(self) -> Tensor:
        """Valid non-positive entries ``(B, N)``."""
        return self.valid_mask & ~self.positive_mask

    @property
    def teacher_mask(self) -> Tensor:
        """Valid entries with a (finite) teacher score ``(B, N)``; all ``False`` without a teacher."""
        if self.teacher_scores is None:
            return torch.zeros_like(self.valid_mask)
        return self.valid_mask & torch.isfinite(self.teacher_scores)


# --------------------------------------------------------------------------- helpers


def _as_float(x: Tensor) -> Tensor:
    """Half precision is promoted to float32 (losses are summed over many terms)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _clean(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` where ``mask`` else 0: removes inf/nan *before* any arithmetic so masked entries
    cannot leak ``nan`` into the forward pass or (through ``0 * nan``) into the backward pass."""
    return torch.where(mask, _as_float(x), 0.0)


def _student(inputs: LossInputs) -> Tensor:
    return _clean(inputs.scores, inputs.valid_mask)


def _teacher(inputs: LossInputs) -> Tensor:
    if inputs.teacher_scores is None:
        raise ValueError("this loss needs LossInputs.teacher_scores (got None)")
    return _clean(inputs.teacher_scores.detach(), inputs.teacher_mask)


def _masked_logsumexp(x: Tensor, mask: Tensor) -> Tensor:
    """logsumexp over the masked entries of each row; finite garbage for empty rows."""
    x = x.masked_fill(~mask, float("-inf"))
    x = torch.where(mask.any(-1, keepdim=True), x, 0.0)
    return torch.logsumexp(x, dim=-1)


def _row_mean(row_loss: Tensor, row_counts: Tensor) -> Tensor:
    """Mean of ``row_loss`` over the rows where ``row_counts``; a graph-connected 0 if none."""
    kept = torch.where(row_counts, row_loss, 0.0)
    return kept.sum() / row_counts.sum().clamp(min=1)


def _gather(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Pack each row's masked entries to the left.

    Shapes: x, mask ``(B, N)`` -> values, present ``(B, K)`` with ``K`` the largest row count.
    """
    k = int(mask.sum(-1).max().item()) if mask.numel() else 0
    order = torch.argsort(mask.to(torch.int8), dim=-1, descending=True, stable=True)[:, :k]
    return x.gather(-1, order), mask.gather(-1, order)


def _pairs_mean(loss: Tensor, pair_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row mean of ``loss`` over ``pair_mask`` (trailing dims are pairs); returns
    ``(row_mean (B,), row_has_pairs (B,))``."""
    flat_loss, flat_mask = loss.flatten(1), pair_mask.flatten(1)
    n = flat_mask.sum(-1)
    total = torch.where(flat_mask, flat_loss, 0.0).sum(-1)
    return total / n.clamp(min=1), n > 0


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _pick(kind: str, name: str, table: Mapping[str, Any]) -> Any:
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(table))}") from None


# --------------------------------------------------------------------------- contrastive


def _infonce_rows(s: Tensor, pos: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Row losses ``logsumexp_valid(s) - logsumexp_pos(s)`` and which rows count."""
    neg = valid & ~pos
    row = _masked_logsumexp(s, valid) - _masked_logsumexp(s, pos)
    return row, pos.any(-1) & neg.any(-1)


@LOSSES.register("infonce")
def infonce(inputs: LossInputs, *, tau: float = 0.05, symmetric: bool = False) -> Tensor:
    """InfoNCE: softmax cross-entropy over each row's valid candidates.

    Scores are divided by ``tau``; ``0.05`` (scale 20, as in sentence-transformers'
    ``MultipleNegativesRankingLoss``) is the usual setting for cosine scores. With one positive
    per row this is exactly ``F.cross_entropy(scores / tau, target)`` over the valid columns.
    With several positives the row loss is ``-log sum_{p in pos} softmax(s / tau)_p`` (the
    probability of picking *any* positive, as in MIL-NCE); for the decoupled per-positive
    form use ``multi_positive``. A row counts when it has a valid positive and a valid negative.

    ``symmetric=True`` adds the document->query direction (positives-first layout): the rows
    of the document view are columns ``0..B-1``, scored against the ``B`` queries by
    ``inputs.doc_scores`` or, if that is ``None``, by ``scores[:, :B].T``; their positive and
    valid masks are ``positive_mask[:, :B].T`` and ``valid_mask[:, :B].T``. The loss is the
    mean over the counting rows of both views, which is ``(L_q->d + L_d->q) / 2`` (the
    sentence-transformers ``MultipleNegativesSymmetricRankingLoss``) when every row counts.

    Args:
        inputs: the batch; reads scores, positive_mask, valid_mask (and doc_scores).
        tau: temperature (> 0).
        symmetric: add the document->query term.

    Shapes:
        inputs.scores ``(B, N)`` (``N >= B`` when symmetric) -> scalar.

    Returns:
        The mean row loss (a graph-connected 0 when no row counts).

    Example:
        >>> s = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
        >>> x = LossInputs.from_targets(s, torch.tensor([0, 1]))
        >>> round(infonce(x, tau=1.0).item(), 4)  # mean of softplus(-2), softplus(-1)
        0.2201
        >>> round(F.cross_entropy(s, torch.tensor([0, 1])).item(), 4)
        0.2201
    """
    _check_positive("tau", tau)
    s = _student(inputs) / tau
    rows, counts = _infonce_rows(s, inputs.pos, inputs.valid_mask)
    if symmetric:
        b, n = s.shape
        if n < b:
            raise ValueError(f"symmetric infonce needs N >= B columns (positives first), got scores {(b, n)}")
        pos_d, valid_d = inputs.pos[:, :b].T, inputs.valid_mask[:, :b].T
        sd = s[:, :b].T if inputs.doc_scores is None else _clean(inputs.doc_scores, valid_d) / tau
        rows_d, counts_d = _infonce_rows(sd, pos_d, valid_d)
        rows, counts = torch.cat([rows, rows_d]), torch.cat([counts, counts_d])
    return _row_mean(rows, counts)


@LOSSES.register("ce")
def ce(inputs: LossInputs, *, tau: float = 1.0, symmetric: bool = False) -> Tensor:
    """Candidate-set cross-entropy (response selection, Uni-Encoder): ``infonce`` with ``tau=1``.

    Meant for raw logits (cross-encoder / Uni-Encoder heads) where no temperature is wanted.

    Example:
        >>> s = torch.tensor([[1.0, 3.0, 0.5]])
        >>> x = LossInputs.from_targets(s, torch.tensor([1]))
        >>> bool(torch.isclose(ce(x), F.cross_entropy(s, torch.tensor([1]))))
        True
    """
    return infonce(inputs, tau=tau, symmetric=symmetric)


@LOSSES.register("multi_positive")
def multi_positive(inputs: LossInputs, *, tau: float = 0.05) -> Tensor:
    """Decoupled softmax for queries with several relevant documents.

    For each valid positive ``p`` of a row, with ``s`` divided by ``tau``::

        l_p = -log( exp(s_p) / (exp(s_p) + sum_{n in negatives} exp(s_n)) )

    i.e. the row's *other* positives are removed from ``p``'s denominator, so positives do not
    compete. ``l_p`` is averaged over the row's positives, then over rows (each query weighs
    the same whatever its number of positives). A row counts when it has a valid positive and
    a valid negative. With one positive per row this equals ``infonce``.

    Args:
        inputs: reads scores, positive_mask, valid_mask.
        tau: temperature (> 0).

    Shapes:
        inputs.scores ``(B, N)`` -> scalar.

    Example:
        >>> s = torch.tensor([[2.0, 1.0, 0.0]])      # two positives, one negative
        >>> x = LossInputs(s, torch.tensor([[True, True, False]]))
        >>> round(multi_positive(x, tau=1.0).item(), 4)  # (softplus(-2) + softplus(-1)) / 2
        0.2201
    """
    _check_positive("tau", tau)
    s = _student(inputs) / tau
    pos, neg = inputs.pos, inputs.negative_mask
    lse_neg = _masked_logsumexp(s, neg)  # (B,)
    pos_s, present = _gather(s, pos)  # (B, P)
    per_pos = torch.logaddexp(pos_s, lse_neg[:, None]) - pos_s
    rows, has_pos = _pairs_mean(per_pos, present)
    return _row_mean(rows, has_pos & neg.any(-1))


# --------------------------------------------------------------------------- AUC (Mann-Whitney)


def _mw_per_query(s: Tensor, inputs: LossInputs, scale: float) -> Tensor:
    pos_s, present = _gather(s, inputs.pos)  # (B, P)
    diff = pos_s[:, :, None] - s[:, None, :]  # (B, P, N)
    pair = present[:, :, None] & inputs.negative_mask[:, None, :]
    rows, counts = _pairs_mean(F.softplus(-scale * diff), pair)
    return _row_mean(rows, counts)


def _mw_global(s: Tensor, inputs: LossInputs, scale: float) -> Tensor:
    pos_s, neg_s = s[inputs.pos], s[inputs.negative_mask]  # (P,), (M,)
    if pos_s.numel() == 0 or neg_s.numel() == 0:
        return s.sum() * 0.0
    return F.softplus(-scale * (pos_s[:, None] - neg_s[None, :])).mean()  # (P, M) pairs


_MW_PAIRINGS: dict[str, Callable[[Tensor, LossInputs, float], Tensor]] = {
    "per_query": _mw_per_query,
    "global": _mw_global,
}


@LOSSES.register("mw")
def mw(inputs: LossInputs, *, scale: float = 20.0, pairing: str = "per_query") -> Tensor:
    """Mann-Whitney (AUC) loss: ``-log sigmoid(scale * (s_pos - s_neg))`` over positive-negative pairs.

    From Sheikholeslami et al. 2025, "Optimizing What Matters: AUC-Driven Learning for Robust
    Neural Retrieval" (arXiv:2510.00137): binary cross-entropy on score differences, whose
    mean upper-bounds ``(1 - AUC) * ln 2`` at ``scale=1`` because
    ``1[x <= 0] <= -log2 sigmoid(x)``. ``scale`` multiplies the difference; the default 20
    (= 1 / 0.05) matches ``infonce``'s default temperature for cosine scores.

    Pairings:
        * ``"per_query"``: pairs within a row (its valid positives x its valid negatives);
          mean over a row's pairs, then over rows that have a pair. Bounds the mean per-query AUC.
        * ``"global"``: every valid positive of the batch against every valid negative of the
          batch, across rows (the calibration variant: one threshold for all queries); plain
          mean over the ``P x M`` pairs. Bounds the AUC of the pooled scores. Builds a
          ``(P, M)`` matrix (``P`` positives, ``M`` negatives in the batch, e.g.
          ``B x B(1+k)`` for in-batch training), not ``(B N)^2``.

    Args:
        inputs: reads scores, positive_mask, valid_mask.
        scale: multiplier of the score difference (> 0).
        pairing: ``"per_query"`` or ``"global"``.

    Shapes:
        inputs.scores ``(B, N)`` -> scalar.

    Example:
        >>> x = LossInputs(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[True, False, False]]))
        >>> round(mw(x, scale=1.0).item(), 4)  # (softplus(-1) + softplus(-2)) / 2
        0.2201
    """
    _check_positive("scale", scale)
    fn = _pick("mw pairing", pairing, _MW_PAIRINGS)
    return fn(_student(inputs), inputs, scale)


# --------------------------------------------------------------------------- distillation


@LOSSES.register("margin_mse")
def margin_mse(inputs: LossInputs, *, scale: float = 1.0) -> Tensor:
    """Margin-MSE (Hofstätter et al. 2020, arXiv:2010.02666).

    For every (positive ``p``, negative ``n``) pair of a row where both have teacher scores::

        ((scale * (s_p - s_n)) - (t_p - t_n)) ** 2

    averaged over the row's pairs, then over rows with a pair. With one positive and equal
    negatives per row this is sentence-transformers' ``MarginMSELoss``. ``scale=1`` compares
    raw margins (dot-product students, as in the paper); for a cosine student against logit
    teachers a larger ``scale`` brings the margins onto the teacher's range.

    Args:
        inputs: reads scores, positive_mask, valid_mask, teacher_scores.
        scale: multiplier of the student margin (> 0).

    Shapes:
        inputs.scores, inputs.teacher_scores ``(B, N)`` -> scalar.

    Example:
        >>> x = LossInputs(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([[True, False, False]]),
        ...                teacher_scores=torch.tensor([[10.0, 7.0, 9.0]]))
        >>> margin_mse(x).item()  # ((2 - 3)^2 + (1 - 1)^2) / 2
        0.5
    """
    _check_positive("scale", scale)
    s, t, has_t = _student(inputs), _teacher(inputs), inputs.teacher_mask
    pos = inputs.pos & has_t
    neg = inputs.negative_mask & has_t
    pos_s, present = _gather(s, pos)  # (B, P)
    pos_t, _ = _gather(t, pos)
    student = scale * (pos_s[:, :, None] - s[:, None, :])  # (B, P, N)
    teacher = pos_t[:, :, None] - t[:, None, :]
    rows, counts = _pairs_mean((student - teacher) ** 2, present[:, :, None] & neg[:, None, :])
    return _row_mean(rows, counts)


@LOSSES.register("kl")
def kl(inputs: LossInputs, *, tau: float = 1.0, teacher_tau: float = 1.0, scale_by_tau_squared: bool = False) -> Tensor:
    """Listwise distillation: ``KL(softmax(t / teacher_tau) || softmax(s / tau))`` per row.

    The softmaxes run over a row's valid entries that have a teacher score; a row counts when
    it has at least two of them (with one, the KL is 0). Mean over counting rows (this is
    ``F.kl_div(..., reduction="batchmean")`` when every entry is valid). Positive labels are
    not used. ``scale_by_tau_squared`` multiplies by ``tau**2`` (Hinton et al.; what
    sentence-transformers' ``DistillKLDivLoss`` does, identical at ``tau=1``). For cosine
    students set ``tau`` near 0.05 so their softmax is not flat.

    Args:
        inputs: reads scores, valid_mask, teacher_scores.
        tau: student temperature (> 0).
        teacher_tau: teacher temperature (> 0).
        scale_by_tau_squared: multiply the loss by ``tau ** 2``.

    Shapes:
        inputs.scores, inputs.teacher_scores ``(B, N)`` -> scalar.

    Example:
        >>> s, t = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[2.0, 0.5, 0.0]])
        >>> x = LossInputs(s, torch.tensor([[True, False, False]]), teacher_scores=t)
        >>> ref = F.kl_div(s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="batchmean")
        >>> bool(torch.isclose(kl(x), ref))
        True
    """
    _check_positive("tau", tau)
    _check_positive("teacher_tau", teacher_tau)
    m = inputs.teacher_mask
    s, t = _student(inputs) / tau, _teacher(inputs) / teacher_tau
    log_q = s - _masked_logsumexp(s, m)[:, None]
    log_p = t - _masked_logsumexp(t, m)[:, None]
    terms = torch.where(m, log_p.exp() * (log_p - log_q), 0.0)
    loss = _row_mean(terms.sum(-1), m.sum(-1) >= 2)
    return loss * tau**2 if scale_by_tau_squared else loss


_PAIR_FORMS: dict[str, Callable[[Tensor], Tensor]] = {
    "logistic": lambda z: F.softplus(-z),  # -log sigmoid(z), RankNet
    "hinge": lambda z: F.relu(1.0 - z),
}


@LOSSES.register("cprd")
def cprd(inputs: LossInputs, *, scale: float = 20.0, teacher_margin: float = 0.0, form: str = "logistic") -> Tensor:
    """Hard-negative rank distillation: learn the teacher's *order* among a row's hard negatives.

    "CPRD" (contrastive + pairwise rank distillation) is this project's name; we found no
    canonical paper for it. Its pieces are published: pairwise distillation of teacher
    preferences (PairDistill, Huang & Chen, EMNLP 2024) with a RankNet-style logistic loss
    (Burges et al. 2005). Only the order is distilled (teacher score values and the positive
    are ignored); the contrastive part is a separate loss, added through :func:`combine`,
    e.g. ``{"infonce": 1.0, "cprd": 0.5}``.

    What is computed: per row, the hard negatives ``H`` are the valid non-positive entries that
    have a teacher score and are in ``hard_negative_mask`` (every such negative when the mask is
    ``None``). For each ordered pair ``(i, j)`` in ``H`` with ``t_i - t_j > teacher_margin``,
    with ``z = scale * (s_i - s_j)``:

    * ``form="logistic"``: ``-log sigmoid(z)``;
    * ``form="hinge"``: ``max(0, 1 - z)`` (a raw margin of ``1 / scale``).

    Mean over a row's pairs, then over rows with a pair. Teacher ties never form a pair.
    Builds a ``(B, H, H)`` tensor for ``H`` = the most hard negatives in a row, so pass a
    ``hard_negative_mask`` (the mined negatives) rather than a whole in-batch pool.

    Args:
        inputs: reads scores, positive_mask, valid_mask, teacher_scores, hard_negative_mask.
        scale: multiplier of the student difference (> 0); 20 suits cosine scores.
        teacher_margin: minimum teacher gap (>= 0) for a pair to count.
        form: ``"logistic"`` or ``"hinge"``.

    Shapes:
        inputs.scores, inputs.teacher_scores, inputs.hard_negative_mask ``(B, N)`` -> scalar.

    Example:
        >>> x = LossInputs(torch.tensor([[9.0, 0.0, 1.0]]), torch.tensor([[True, False, False]]),
        ...                teacher_scores=torch.tensor([[5.0, 3.0, 1.0]]))
        >>> round(cprd(x, scale=1.0).item(), 4)  # one pair (1, 2): softplus(-(0 - 1))
        1.3133
    """
    _check_positive("scale", scale)
    if not teacher_margin >= 0:
        raise ValueError(f"teacher_margin must be >= 0, got {teacher_margin!r}")
    pair_loss = _pick("cprd form", form, _PAIR_FORMS)
    s, t = _student(inputs), _teacher(inputs)
    hard = inputs.negative_mask & inputs.teacher_mask
    if inputs.hard_negative_mask is not None:
        hard = hard & inputs.hard_negative_mask
    hs, present = _gather(s, hard)  # (B, H)
    ht, _ = _gather(t, hard)
    pair = present[:, :, None] & present[:, None, :] & (ht[:, :, None] - ht[:, None, :] > teacher_margin)
    z = scale * (hs[:, :, None] - hs[:, None, :])  # (B, H, H)
    rows, counts = _pairs_mean(pair_loss(z), pair)
    return _row_mean(rows, counts)


# --------------------------------------------------------------------------- sparsity regularisers (SPLADE)


def quadratic_warmup(step: int | None, warmup_steps: int) -> float:
    """The SPLADE warm-up factor of a regulariser weight: ``min(1, (step / warmup_steps) ** 2)``
    (Formal et al. 2021: lambda grows quadratically to its value over the first steps); 1
    without warm-up or without a step.

    Example:
        >>> [quadratic_warmup(s, 4) for s in (0, 1, 2, 4, 9)]
        [0.0, 0.0625, 0.25, 1.0, 1.0]
    """
    if not warmup_steps or step is None:
        return 1.0
    return min(1.0, (max(step, 0) / warmup_steps) ** 2)


def flops_value(reps: Tensor) -> Tensor:
    """FLOPS regulariser of a batch of non-negative vectors: ``sum_v (mean_i |w_iv|) ** 2``
    (Paria et al. 2020), a smooth proxy of the number of floating-point operations a sparse
    dot product costs. An empty batch gives a graph-connected zero.

    Shapes: ``(N, V)`` -> scalar.

    Example:
        >>> flops_value(torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])).item()  # 2^2 + 0 + 1^2
        5.0
    """
    if reps.shape[0] == 0:
        return reps.sum() * 0.0
    return (reps.abs().float().mean(0) ** 2).sum()


def l1_value(reps: Tensor) -> Tensor:
    """L1 regulariser: ``mean_i sum_v |w_iv|``. Shapes: ``(N, V)`` -> scalar.

    Example:
        >>> l1_value(torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])).item()  # (3 + 3) / 2
        3.0
    """
    if reps.shape[0] == 0:
        return reps.sum() * 0.0
    return reps.abs().float().sum(1).mean()


def _regulariser(
    inputs: LossInputs, value: Callable[[Tensor], Tensor], name: str, query: float, doc: float, warmup_steps: int
) -> Tensor:
    for key, lam in (("query", query), ("doc", doc)):
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
            raise ValueError(f"{name} {key} weight must be a finite number >= 0, got {lam!r}")
    if warmup_steps < 0:
        raise ValueError(f"{name} warmup_steps must be >= 0, got {warmup_steps}")
    if inputs.query_reps is None or inputs.doc_reps is None:
        raise ValueError(f"{name} needs the batch's query and document representations (a model of kind splade)")
    w = quadratic_warmup(inputs.step, warmup_steps)
    return w * (query * value(inputs.query_reps) + doc * value(inputs.doc_reps))


@LOSSES.register("flops")
def flops(inputs: LossInputs, *, query: float = 5e-4, doc: float = 3e-4, warmup_steps: int = 0) -> Tensor:
    """SPLADE's FLOPS regularisation with separate query and document weights and the
    quadratic warm-up: ``w(t) * (query * FLOPS(Q) + doc * FLOPS(D))`` with
    ``FLOPS(X) = sum_v (mean_i x_iv) ** 2`` (:func:`flops_value`) over the batch's query
    vectors ``Q`` and document vectors ``D`` (every document of the pool) and
    ``w(t) = min(1, (t / warmup_steps) ** 2)`` at optimizer step ``t``
    (:func:`quadratic_warmup`). The defaults are small weights for fine-tuning a checkpoint that
    is already sparse; the SPLADE papers tune lambda_q / lambda_d per setting (larger from
    scratch, larger for queries for fast retrieval). Configure the weights here and give the
    loss weight 1::

        losses: {infonce: 1.0, flops: {weight: 1.0, query: 5.0e-4, doc: 3.0e-4, warmup_steps: 100}}

    Args:
        inputs: reads query_reps, doc_reps, step.
        query, doc: lambda_q, lambda_d (>= 0).
        warmup_steps: steps of the quadratic warm-up (0: none).

    Example:
        >>> x = LossInputs(torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool),
        ...                query_reps=torch.tensor([[2.0, 0.0]]), doc_reps=torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
        ...                step=1)
        >>> round(flops(x, query=1.0, doc=2.0, warmup_steps=2).item(), 4)  # 0.25 * (1 * 4 + 2 * (1 + 0.25))
        1.625
    """
    return _regulariser(inputs, flops_value, "flops", query, doc, warmup_steps)


@LOSSES.register("l1")
def l1(inputs: LossInputs, *, query: float = 5e-4, doc: float = 3e-4, warmup_steps: int = 0) -> Tensor:
    """L1 regularisation of SPLADE vectors: ``w(t) * (query * L1(Q) + doc * L1(D))`` with
    ``L1(X) = mean_i sum_v |x_iv|`` (:func:`l1_value`); same weights and warm-up as :func:`flops`.

    Example:
        >>> x = LossInputs(torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool),
        ...                query_reps=torch.tensor([[2.0, 0.0]]), doc_reps=torch.tensor([[1.0, 1.0]]))
        >>> l1(x, query=1.0, doc=0.5).item()  # 2 + 0.5 * 2
        3.0
    """
    return _regulariser(inputs, l1_value, "l1", query, doc, warmup_steps)


# --------------------------------------------------------------------------- combining


def resolve_loss_weights(
    weights: Mapping[str, float | Mapping[str, Any]],
) -> list[tuple[str, LossFn, float, dict[str, Any]]]:
    """Validate a loss-weight config and resolve names through :data:`LOSSES`.

    Each entry is ``label: weight`` or ``label: {"weight": w, **params}``; the label is the
    registered loss name unless the dict has ``"loss": name`` (to use one loss twice with
    different params). Call this when loading a config so mistakes surface before training.

    Args:
        weights: the config mapping.

    Returns:
        ``[(label, fn, weight, params), ...]`` in the mapping's order.

    Raises:
        ConfigError: empty mapping, unknown loss, missing/non-numeric/negative weight, unknown param.

    Example:
        >>> [(label, w, p) for label, _, w, p in resolve_loss_weights({"mw": {"weight": 0.5, "pairing": "global"}})]
        [('mw', 0.5, {'pairing': 'global'})]
        >>> resolve_loss_weights({"mw": {"weight": 1.0, "tau": 0.1}})
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: loss 'mw': unknown parameter(s) tau; valid: scale, pairing
    """
    if not weights:
        raise ConfigError(f"losses: expected at least one 'name: weight' entry; valid names: {', '.join(LOSSES)}")
    resolved = []
    for label, entry in weights.items():
        params = dict(entry) if isinstance(entry, Mapping) else {"weight": entry}
        name = params.pop("loss", label)
        if name not in LOSSES:
            raise ConfigError(f"losses.{label}: unknown loss {name!r}; valid: {', '.join(LOSSES)}")
        weight = params.pop("weight", None)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ConfigError(f"losses.{label}: expected a finite number as weight, got {weight!r}")
        if weight < 0:  # a negative weight maximises the loss: training silently runs backwards
            raise ConfigError(f"losses.{label}: weight must be >= 0, got {weight!r}")
        fn = LOSSES.get(name)
        accepted = [p for p in inspect.signature(fn).parameters if p != "inputs"]
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ConfigError(f"loss {name!r}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(accepted)}")
        resolved.append((label, fn, float(weight), params))
    return resolved


def combine(weights: Mapping[str, float | Mapping[str, Any]], inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum of registered losses on one batch.

    Args:
        weights: ``{label: weight}`` or ``{label: {"weight": w, **params}}`` (optionally with
            ``"loss": name``); see :func:`resolve_loss_weights`.
        inputs: the batch.

    Returns:
        ``(total, parts)``: ``total = sum(weight * loss)`` (differentiable) and ``parts`` maps
        each label to its *unweighted* loss value, detached (for logging).

    Example:
        >>> x = LossInputs(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[True, False, False]]))
        >>> total, parts = combine({"ce": 1.0, "hard": {"loss": "mw", "weight": 2.0, "scale": 1.0}}, x)
        >>> round(parts["hard"].item(), 4), bool(torch.isclose(total, parts["ce"] + 2 * parts["hard"]))
        (0.2201, True)
    """
    total: Tensor | None = None
    parts: dict[str, Tensor] = {}
    for label, fn, weight, params in resolve_loss_weights(weights):
        value = fn(inputs, **params)
        parts[label] = value.detach()
        total = weight * value if total is None else total + weight * value
    assert total is not None  # resolve_loss_weights rejects an empty mapping
    return total, parts
