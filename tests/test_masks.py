"""Uni-Encoder attention masks: literal matrices and agreement with the official construction."""

from __future__ import annotations

import random

import pytest
import torch

from unirank.models.masks import MASKS, build_mask

# one row: context (2 tokens), candidate 1 (2 tokens), candidate 2 (1 token), one pad
SEG = torch.tensor([[0, 0, 1, 1, 2, -1]])

EXPECTED = {
    "arrow": [
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ],
    "arrow_strict": [
        [1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ],
    "diag": [
        [1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ],
    "full": [
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ],
}


def test_registry_lists_the_four_kinds():
    assert MASKS.names() == ["arrow", "arrow_strict", "diag", "full"]
    with pytest.raises(KeyError, match="valid: arrow, arrow_strict, diag, full"):
        build_mask(SEG, "square")


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_literal_matrix(kind):
    m = build_mask(SEG, kind)
    assert m.dtype == torch.bool and m.shape == (1, 6, 6)
    assert m[0].int().tolist() == EXPECTED[kind]


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_batched_rows_are_independent(kind):
    # second row: a 1-token context, two candidates, two pads
    other = torch.tensor([[0, 1, 2, 2, -1, -1]])
    both = build_mask(torch.cat([SEG, other]), kind)
    assert torch.equal(both[0], build_mask(SEG, kind)[0])
    assert torch.equal(both[1], build_mask(other, kind)[0])
    expected_other = {
        "arrow": [[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 1, 1], [1, 0, 1, 1]],
        "arrow_strict": [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 1], [1, 0, 1, 1]],
        "diag": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]],
        "full": [[1, 1, 1, 1]] * 4,
    }[kind]
    assert both[1, :4, :4].int().tolist() == expected_other
    # padding: no real token attends to it, each pad row attends only to itself
    assert not both[1, :4, 4:].any()
    assert both[1, 4:, :].int().tolist() == [[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]]


def official_mask(seg_row: list[int], kind: str) -> torch.Tensor:
    """The mask the official Uni-Encoder builds for one example, from its bos locations.

    Follows dll-wu/Uni-Encoder uni_encoder.py (attn_map 'arrow' / 'diag', and 'square' =
    the padding mask), written here as a plain loop: responses form a block diagonal; for
    'arrow' the context rows and context columns are all ones; for 'diag' the context
    block is ones; everything beyond the valid length is zero.
    """
    L = len(seg_row)
    valid = sum(s >= 0 for s in seg_row)
    history = sum(s == 0 for s in seg_row)
    m = torch.zeros(L, L, dtype=torch.bool)
    for i in range(history, valid):
        for j in range(history, valid):
            m[i, j] = seg_row[i] == seg_row[j]
    if kind == "arrow":
        m[:history, :valid] = True
        m[:valid, :history] = True
    elif kind == "diag":
        m[:history, :history] = True
    elif kind == "full":
        m[:valid, :valid] = True
    return m


@pytest.mark.parametrize("kind", ["arrow", "diag", "full"])
def test_agrees_with_official_construction_on_real_tokens(kind):
    rng = random.Random(0)
    for _ in range(30):
        rows = []
        for _ in range(3):
            row = [0] * rng.randint(1, 4)
            for k in range(1, rng.randint(0, 4) + 1):
                row += [k] * rng.randint(1, 3)
            rows.append(row)
        L = max(map(len, rows)) + rng.randint(0, 2)
        seg = torch.tensor([r + [-1] * (L - len(r)) for r in rows])
        ours = build_mask(seg, kind)
        for b, row in enumerate(seg.tolist()):
            real = torch.tensor(row) >= 0
            ref = official_mask(row, kind)
            # identical on real rows; padding rows differ by design (official: all zero)
            assert torch.equal(ours[b][real], ref[real])


def test_every_row_has_a_key_so_softmax_is_finite():
    seg = torch.tensor([[0, 1, 2, -1, -1], [0, 0, 0, 0, 0], [0, -1, -1, -1, -1]])
    for kind in MASKS:
        m = build_mask(seg, kind)
        assert m.any(-1).all(), kind
        assert not (m & (seg[:, None, :] < 0) & (seg[:, :, None] >= 0)).any(), kind


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        build_mask(torch.tensor([0, 1]), "arrow")
