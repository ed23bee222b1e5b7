"""Tests for unirank.losses: hand-computed values, torch / scikit-learn references, masking."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from unirank.errors import ConfigError
from unirank.losses import (
    LOSSES,
    LossInputs,
    ce,
    combine,
    cprd,
    infonce,
    kl,
    margin_mse,
    multi_positive,
    mw,
    resolve_loss_weights,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def one_hot(targets: list[int], n: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(targets), n).bool()


def rich_batch(seed: int = 0, dtype: torch.dtype = torch.float64) -> LossInputs:
    """B=5 rows, N=9 columns: multi-positive rows, padding, teacher gaps, hard negatives,
    one row with no positive and one row with no valid negative (both must be skipped)."""
    g = torch.Generator().manual_seed(seed)
    b, n = 5, 9
    scores = torch.randn(b, n, generator=g, dtype=dtype)
    pos = torch.zeros(b, n, dtype=torch.bool)
    pos[0, 0] = pos[1, 1] = pos[1, 4] = pos[2, 2] = True
    pos[4, 0] = pos[4, 1] = True
    valid = torch.rand(b, n, generator=g) > 0.2
    valid[:, :3] = True
    valid[4] = False
    valid[4, :2] = True  # row 4: positives only -> no negative
    # row 3: no positive
    teacher = torch.randn(b, n, generator=g, dtype=dtype) * 3
    teacher[torch.rand(b, n, generator=g) < 0.15] = float("nan")
    teacher[:3, :3] = teacher[:3, :3].nan_to_num(1.0)
    hard = torch.rand(b, n, generator=g) > 0.3
    return LossInputs(scores, pos, valid, teacher_scores=teacher, hard_negative_mask=hard)


def with_scores(x: LossInputs, scores: torch.Tensor, teacher: torch.Tensor | None = None) -> LossInputs:
    return LossInputs(
        scores,
        x.positive_mask,
        x.valid_mask,
        teacher_scores=x.teacher_scores if teacher is None else teacher,
        hard_negative_mask=x.hard_negative_mask,
        doc_scores=x.doc_scores,
    )


# every registered loss with params that exercise it
ALL_LOSSES = [
    ("infonce", {}),
    ("infonce", {"tau": 1.0}),
    ("ce", {}),
    ("multi_positive", {"tau": 0.5}),
    ("mw", {"pairing": "per_query"}),
    ("mw", {"pairing": "global", "scale": 2.0}),
    ("margin_mse", {}),
    ("kl", {"tau": 0.5, "teacher_tau": 2.0}),
    ("cprd", {"scale": 1.0}),
    ("cprd", {"form": "hinge", "teacher_margin": 0.5}),
]


def test_registry_holds_every_loss():
    assert LOSSES.names() == sorted(
        ["infonce", "ce", "mw", "margin_mse", "kl", "cprd", "multi_positive", "flops", "l1"]
    )


# --------------------------------------------------------------------------- infonce / ce


@pytest.mark.parametrize("tau", [0.05, 1.0, 3.0])
def test_infonce_one_positive_equals_cross_entropy(tau):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(6, 10, generator=g, dtype=torch.float64)
    target = torch.randint(0, 10, (6,), generator=g)
    got = infonce(LossInputs.from_targets(s, target), tau=tau)
    ref = F.cross_entropy(s / tau, target)
    assert abs(got.item() - ref.item()) < 1e-6


def test_infonce_float32_matches_cross_entropy():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(8, 16, generator=g)
    target = torch.randint(0, 16, (8,), generator=g)
    got = infonce(LossInputs.from_targets(s, target))
    assert torch.allclose(got, F.cross_entropy(s / 0.05, target), rtol=1e-6, atol=1e-6)


def test_infonce_invalid_columns_are_excluded_like_minus_inf_logits():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(4, 7, generator=g, dtype=torch.float64)
    target = torch.tensor([0, 3, 6, 2])
    valid = torch.rand(4, 7, generator=g) > 0.4
    valid[torch.arange(4), target] = True
    valid[:, 1] = valid[:, 1] | (target != 1)  # keep at least one negative per row
    got = infonce(LossInputs.from_targets(s, target, valid_mask=valid), tau=0.5)
    ref = F.cross_entropy((s / 0.5).masked_fill(~valid, float("-inf")), target)
    assert abs(got.item() - ref.item()) < 1e-9


def test_infonce_multi_positive_is_log_of_positive_mass():
    # row: pos {0, 1}, neg {2}; tau=1: -log((e^2 + e^1) / (e^2 + e^1 + e^0))
    x = LossInputs(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[True, True, False]]))
    expected = -math.log((math.e**2 + math.e) / (math.e**2 + math.e + 1))
    assert infonce(x, tau=1.0).item() == pytest.approx(expected, abs=1e-6)


def test_infonce_symmetric_matches_two_cross_entropies():
    g = torch.Generator().manual_seed(4)
    b, n = 4, 10  # positives first: column i is query i's positive, then 6 mined negatives
    s = torch.randn(b, n, generator=g, dtype=torch.float64)
    x = LossInputs.from_targets(s, torch.arange(b))
    labels = torch.arange(b)
    ref = (F.cross_entropy(s / 0.05, labels) + F.cross_entropy(s[:, :b].T / 0.05, labels)) / 2
    assert abs(infonce(x, symmetric=True).item() - ref.item()) < 1e-6
    # an explicit doc_scores replaces the transposed block
    d = torch.randn(b, b, generator=g, dtype=torch.float64)
    xd = LossInputs.from_targets(s, labels, doc_scores=d)
    ref_d = (F.cross_entropy(s / 0.05, labels) + F.cross_entropy(d / 0.05, labels)) / 2
    assert abs(infonce(xd, symmetric=True).item() - ref_d.item()) < 1e-6


def test_infonce_symmetric_needs_positives_first_columns():
    x = LossInputs.from_targets(torch.zeros(3, 2), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="N >= B"):
        infonce(x, symmetric=True)


def test_ce_is_infonce_at_tau_one():
    g = torch.Generator().manual_seed(5)
    s = torch.randn(3, 5, generator=g, dtype=torch.float64)
    target = torch.tensor([4, 0, 2])
    assert abs(ce(LossInputs.from_targets(s, target)).item() - F.cross_entropy(s, target).item()) < 1e-9


# --------------------------------------------------------------------------- multi_positive


def test_multi_positive_hand_value():
    # pos {0: 2.0, 1: 1.0}, neg {2: 0.0}, tau=1 -> mean(softplus(-2), softplus(-1))
    x = LossInputs(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[True, True, False]]))
    assert multi_positive(x, tau=1.0).item() == pytest.approx((softplus(-2) + softplus(-1)) / 2, abs=1e-6)


def test_multi_positive_with_one_positive_equals_infonce():
    g = torch.Generator().manual_seed(6)
    s = torch.randn(5, 8, generator=g, dtype=torch.float64)
    valid = torch.rand(5, 8, generator=g) > 0.3
    target = torch.tensor([0, 1, 2, 3, 4])
    valid[torch.arange(5), target] = True
    x = LossInputs.from_targets(s, target, valid_mask=valid)
    assert abs(multi_positive(x).item() - infonce(x).item()) < 1e-9


def test_multi_positive_matches_loop_reference_and_averages_per_row():
    x = rich_batch(7)
    tau = 0.5
    s = x.scores / tau
    row_losses = []
    for b in range(s.shape[0]):
        pos = [j for j in range(s.shape[1]) if x.pos[b, j]]
        neg = [j for j in range(s.shape[1]) if x.negative_mask[b, j]]
        if not pos or not neg:
            continue
        per_pos = [-(s[b, p] - torch.logsumexp(s[b, [p] + neg], 0)).item() for p in pos]
        row_losses.append(sum(per_pos) / len(per_pos))
    assert len(row_losses) == 3  # rows 3 (no positive) and 4 (no negative) are skipped
    assert multi_positive(x, tau=tau).item() == pytest.approx(sum(row_losses) / 3, abs=1e-9)


# --------------------------------------------------------------------------- mw (AUC)


def test_mw_hand_value_one_positive_two_negatives():
    x = LossInputs(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[True, False, False]]))
    expected = (softplus(-1.0) + softplus(-2.0)) / 2  # 0.220095
    assert mw(x, scale=1.0).item() == pytest.approx(expected, abs=1e-6)
    assert mw(x, scale=1.0, pairing="global").item() == pytest.approx(expected, abs=1e-6)
    # default scale 20 multiplies the differences
    assert mw(x).item() == pytest.approx((softplus(-20.0) + softplus(-40.0)) / 2, rel=1e-5)


def test_mw_global_pairs_across_rows():
    # row 0: pos 0.5, neg 0.0; row 1: pos 2.0, neg 1.0
    s = torch.tensor([[0.5, 0.0], [2.0, 1.0]], dtype=torch.float64)
    x = LossInputs(s, torch.tensor([[True, False], [True, False]]))
    per_query = (softplus(-0.5) + softplus(-1.0)) / 2
    glob = (softplus(-0.5) + softplus(0.5) + softplus(-2.0) + softplus(-1.0)) / 4
    assert mw(x, scale=1.0).item() == pytest.approx(per_query, abs=1e-9)
    assert mw(x, scale=1.0, pairing="global").item() == pytest.approx(glob, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_mw_upper_bounds_one_minus_auc(seed):
    """1[x <= 0] <= -log2 sigmoid(x) for every pair, so 1 - AUC <= MW / ln 2 (scale = 1)."""
    x = rich_batch(seed)
    s = x.scores.numpy()
    per_row = []
    for b in range(s.shape[0]):
        m = x.valid_mask[b].numpy()
        y = x.positive_mask[b].numpy()[m]
        if 0 < y.sum() < y.size:
            per_row.append(1 - roc_auc_score(y, s[b][m]))
    loss = mw(x, scale=1.0).item()
    assert sum(per_row) / len(per_row) <= loss / math.log(2) + 1e-12
    m = x.valid_mask.numpy()
    pooled = 1 - roc_auc_score(x.positive_mask.numpy()[m], s[m])
    assert pooled <= mw(x, scale=1.0, pairing="global").item() / math.log(2) + 1e-12


def test_mw_global_matches_pooled_pair_reference():
    x = rich_batch(11)
    pos_s = x.scores[x.pos]
    neg_s = x.scores[x.negative_mask]
    ref = sum(softplus(-(p - n).item()) for p in pos_s for n in neg_s) / (len(pos_s) * len(neg_s))
    assert mw(x, scale=1.0, pairing="global").item() == pytest.approx(ref, abs=1e-9)


def test_mw_vanishes_for_perfectly_separated_scores():
    pos = one_hot([0, 1, 2], 6)
    s = torch.where(pos, 1.0, -1.0) + 0.01 * torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    x = LossInputs(s, pos)
    assert mw(x).item() < 1e-15  # margins ~2, scale 20 -> softplus(-40) ~ 4e-18
    assert mw(x, pairing="global").item() < 1e-15
    # and reversed scores are penalised heavily
    assert mw(LossInputs(-s, pos)).item() > 30


def test_mw_rejects_unknown_pairing():
    x = LossInputs(torch.zeros(1, 2), torch.tensor([[True, False]]))
    with pytest.raises(ValueError, match="valid: global, per_query"):
        mw(x, pairing="batch")


# --------------------------------------------------------------------------- margin_mse


def test_margin_mse_hand_value():
    # student margins 3-1=2, 3-2=1; teacher margins 10-7=3, 10-9=1 -> ((2-3)^2 + 0^2) / 2
    x = LossInputs(
        torch.tensor([[3.0, 1.0, 2.0]]),
        torch.tensor([[True, False, False]]),
        teacher_scores=torch.tensor([[10.0, 7.0, 9.0]]),
    )
    assert margin_mse(x).item() == pytest.approx(0.5)
    # scale multiplies the student margin: (4-3)^2 + (2-1)^2 over 2
    assert margin_mse(x, scale=2.0).item() == pytest.approx(1.0)


def test_margin_mse_rows_average_before_batch_and_missing_teacher_is_skipped():
    nan = float("nan")
    s = torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 5.0]])
    t = torch.tensor([[1.0, 1.0, 0.0], [2.0, 2.0, nan]])
    pos = torch.tensor([[True, False, False], [True, False, False]])
    # row 0: margins (1, 1) vs (0, 1) -> (1 + 0) / 2 = 0.5 ; row 1: only (2 vs 0) -> 4
    x = LossInputs(s, pos, teacher_scores=t)
    assert margin_mse(x).item() == pytest.approx((0.5 + 4.0) / 2)


def test_margin_mse_matches_mse_of_margins_with_fixed_negatives():
    g = torch.Generator().manual_seed(8)
    s = torch.randn(6, 4, generator=g, dtype=torch.float64)
    t = torch.randn(6, 4, generator=g, dtype=torch.float64)
    x = LossInputs.from_targets(s, torch.zeros(6, dtype=torch.long), teacher_scores=t)
    ref = F.mse_loss(s[:, :1] - s[:, 1:], t[:, :1] - t[:, 1:])
    assert abs(margin_mse(x).item() - ref.item()) < 1e-12


def test_teacher_losses_need_teacher_scores():
    x = LossInputs(torch.zeros(1, 2), torch.tensor([[True, False]]))
    for fn in (margin_mse, kl, cprd):
        with pytest.raises(ValueError, match="teacher_scores"):
            fn(x)


# --------------------------------------------------------------------------- kl


@pytest.mark.parametrize("tau,teacher_tau", [(1.0, 1.0), (0.05, 1.0), (0.5, 2.0)])
def test_kl_matches_torch_kl_div(tau, teacher_tau):
    g = torch.Generator().manual_seed(9)
    s = torch.randn(4, 6, generator=g, dtype=torch.float64)
    t = torch.randn(4, 6, generator=g, dtype=torch.float64) * 4
    x = LossInputs.from_targets(s, torch.zeros(4, dtype=torch.long), teacher_scores=t)
    ref = F.kl_div(
        F.log_softmax(s / tau, -1), F.log_softmax(t / teacher_tau, -1), log_target=True, reduction="batchmean"
    )
    assert abs(kl(x, tau=tau, teacher_tau=teacher_tau).item() - ref.item()) < 1e-9
    scaled = kl(x, tau=tau, teacher_tau=teacher_tau, scale_by_tau_squared=True)
    assert abs(scaled.item() - tau**2 * ref.item()) < 1e-9


def test_kl_with_masks_is_row_by_row_kl_over_kept_entries():
    x = rich_batch(10)
    keep = x.valid_mask & torch.isfinite(x.teacher_scores)
    rows = []
    for b in range(x.scores.shape[0]):
        idx = keep[b].nonzero().flatten()
        if len(idx) < 2:
            continue
        rows.append(
            F.kl_div(
                F.log_softmax(x.scores[b, idx], -1),
                F.log_softmax(x.teacher_scores[b, idx] / 2, -1),
                log_target=True,
                reduction="sum",
            ).item()
        )
    assert kl(x, teacher_tau=2.0).item() == pytest.approx(sum(rows) / len(rows), abs=1e-9)


def test_kl_is_zero_when_student_matches_teacher():
    t = torch.tensor([[3.0, 1.0, -2.0, 0.0]])
    x = LossInputs(t.clone(), torch.tensor([[True, False, False, False]]), teacher_scores=t)
    assert kl(x).item() == pytest.approx(0.0, abs=1e-7)


# --------------------------------------------------------------------------- cprd


def cprd_example(hard: torch.Tensor | None = None) -> LossInputs:
    # column 0 positive (ignored by cprd), columns 1-3 hard negatives with teacher 5 > 3 > 1
    return LossInputs(
        torch.tensor([[9.0, 0.1, 0.3, 0.2]], dtype=torch.float64),
        torch.tensor([[True, False, False, False]]),
        teacher_scores=torch.tensor([[8.0, 5.0, 3.0, 1.0]], dtype=torch.float64),
        hard_negative_mask=hard,
    )


def test_cprd_hand_values():
    x = cprd_example()
    # teacher order 1 > 2 > 3; student diffs: s1-s2=-0.2, s1-s3=-0.1, s2-s3=0.1
    expected = (softplus(0.2) + softplus(0.1) + softplus(-0.1)) / 3
    assert cprd(x, scale=1.0).item() == pytest.approx(expected, abs=1e-9)
    # teacher gaps are 2, 4, 2: a margin of 2.5 keeps only the pair (1, 3)
    assert cprd(x, scale=1.0, teacher_margin=2.5).item() == pytest.approx(softplus(0.1), abs=1e-9)
    # hinge: max(0, 1 - 10*d) for d = -0.2, -0.1, 0.1 -> 3, 2, 0
    assert cprd(x, scale=10.0, form="hinge").item() == pytest.approx(5.0 / 3, abs=1e-9)


def test_cprd_uses_only_hard_negatives_and_ignores_ties():
    hard = torch.tensor([[False, True, False, True]])
    assert cprd(cprd_example(hard), scale=1.0).item() == pytest.approx(softplus(0.1), abs=1e-9)
    tie = LossInputs(
        torch.tensor([[0.0, 0.3, 0.1]]),
        torch.tensor([[True, False, False]]),
        teacher_scores=torch.tensor([[1.0, 2.0, 2.0]]),
    )
    assert cprd(tie).item() == 0.0  # the only hard-negative pair is a teacher tie


def test_cprd_is_small_when_student_follows_teacher_order():
    x = with_scores(cprd_example(), torch.tensor([[0.0, 0.9, 0.5, 0.1]], dtype=torch.float64))
    assert cprd(x).item() < 1e-3  # scale 20, gaps >= 0.4 -> softplus(-8) ~ 3e-4


# --------------------------------------------------------------------------- masks, grads, edge cases


@pytest.mark.parametrize("name,params", ALL_LOSSES)
@pytest.mark.parametrize("junk", [1e30, float("inf"), float("-inf"), float("nan")])
def test_masked_entries_do_not_change_loss_or_leak_into_grads(name, params, junk):
    fn = LOSSES.get(name)
    x = rich_batch(12)
    base = fn(x, **params)
    scores = torch.where(x.valid_mask, x.scores, junk).requires_grad_()
    teacher = torch.where(x.valid_mask, x.teacher_scores, junk)
    loss = fn(with_scores(x, scores, teacher), **params)
    assert loss.item() == pytest.approx(base.item(), abs=1e-12)
    loss.backward()
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[~x.valid_mask] == 0).all()


@pytest.mark.parametrize("name,params", ALL_LOSSES)
def test_gradients_flow(name, params):
    x = rich_batch(13)
    scores = x.scores.clone().requires_grad_()
    loss = LOSSES.get(name)(with_scores(x, scores), **params)
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert torch.isfinite(scores.grad).all() and scores.grad.abs().sum() > 0


SPLIT_LOSSES = [(n, p) for n, p in ALL_LOSSES if n not in ("kl", "cprd") and p.get("pairing") != "global"]


@pytest.mark.parametrize("name,params", SPLIT_LOSSES)
def test_skipped_rows_do_not_count(name, params):
    """Rows 3 (no positive) and 4 (no negative) of the rich batch leave the value unchanged
    for the losses that split each row into positives and negatives (kl, cprd and global mw
    do not; their row rules are tested above)."""
    fn = LOSSES.get(name)
    x = rich_batch(14)
    keep = slice(0, 3)
    sub = LossInputs(
        x.scores[keep],
        x.positive_mask[keep],
        x.valid_mask[keep],
        teacher_scores=x.teacher_scores[keep],
        hard_negative_mask=x.hard_negative_mask[keep],
    )
    assert fn(x, **params).item() == pytest.approx(fn(sub, **params).item(), abs=1e-12)


@pytest.mark.parametrize("name,params", ALL_LOSSES)
def test_empty_batch_returns_zero_with_grad(name, params):
    scores = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    x = LossInputs(
        scores,
        torch.zeros(3, 4, dtype=torch.bool),  # no positive anywhere
        valid_mask=torch.tensor([[True, False, False, False]] * 3),  # one candidate per row
        teacher_scores=torch.full((3, 4), float("nan"), dtype=torch.float64),
    )
    loss = LOSSES.get(name)(x, **params)
    assert loss.item() == 0.0
    loss.backward()
    assert scores.grad is not None and (scores.grad == 0).all()


def test_half_precision_scores_give_float32_loss():
    x = LossInputs.from_targets(torch.randn(4, 6).to(torch.bfloat16), torch.tensor([0, 1, 2, 3]))
    loss = infonce(x)
    assert loss.dtype == torch.float32
    ref = F.cross_entropy(x.scores.float() / 0.05, torch.tensor([0, 1, 2, 3]))
    assert torch.allclose(loss, ref, atol=1e-5)


def test_teacher_scores_are_detached():
    t = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
    x = LossInputs(
        torch.tensor([[0.0, 1.0, 2.0]], requires_grad=True), torch.tensor([[True, False, False]]), teacher_scores=t
    )
    (margin_mse(x) + kl(x) + cprd(x)).backward()
    assert t.grad is None


def test_loss_inputs_validation():
    s = torch.zeros(2, 3)
    pos = torch.zeros(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="scores: expected a 2-D float tensor"):
        LossInputs(torch.zeros(3), pos)
    with pytest.raises(ValueError, match="valid_mask: expected a bool tensor of shape"):
        LossInputs(s, pos, valid_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="teacher_scores"):
        LossInputs(s, pos, teacher_scores=torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"doc_scores: expected a float tensor of shape \(2, 2\)"):
        LossInputs(s, pos, doc_scores=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="tau must be > 0"):
        infonce(LossInputs(s, pos), tau=0.0)


# --------------------------------------------------------------------------- combine


def test_combine_weights_and_params():
    x = rich_batch(15)
    total, parts = combine({"infonce": 1.0, "mw": {"weight": 0.5, "pairing": "global", "scale": 2.0}}, x)
    assert set(parts) == {"infonce", "mw"}
    assert parts["infonce"].item() == pytest.approx(infonce(x).item())
    assert parts["mw"].item() == pytest.approx(mw(x, pairing="global", scale=2.0).item())
    assert total.item() == pytest.approx(parts["infonce"].item() + 0.5 * parts["mw"].item())
    assert not parts["mw"].requires_grad


def test_combine_is_differentiable_and_supports_aliases():
    x = rich_batch(16)
    scores = x.scores.clone().requires_grad_()
    xs = with_scores(x, scores)
    total, parts = combine(
        {"ce": 0.0, "cprd": 2.0, "mw_global": {"loss": "mw", "weight": 1.0, "pairing": "global"}}, xs
    )
    total.backward()
    expected_grad = torch.autograd.grad(2.0 * cprd(xs) + mw(xs, pairing="global"), scores)[0]
    assert torch.allclose(scores.grad, expected_grad)
    assert set(parts) == {"ce", "cprd", "mw_global"}


@pytest.mark.parametrize(
    "weights,message",
    [
        ({}, "at least one"),
        ({"infonse": 1.0}, "unknown loss 'infonse'; valid: ce, cprd, flops, infonce"),
        ({"mw": {"pairing": "global"}}, "expected a finite number as weight, got None"),
        ({"mw": "high"}, "expected a finite number as weight"),
        ({"mw": {"weight": 1.0, "tau": 0.1}}, "unknown parameter\\(s\\) tau; valid: scale, pairing"),
        ({"x": {"loss": "nope", "weight": 1.0}}, "losses.x: unknown loss 'nope'"),
    ],
)
def test_bad_loss_configs_are_config_errors(weights, message):
    with pytest.raises(ConfigError, match=message):
        resolve_loss_weights(weights)
