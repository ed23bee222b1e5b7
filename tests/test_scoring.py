import math

import pytest
import torch
import torch.nn.functional as F

from unirank.scoring import SIMILARITIES, cosine, dot


def test_registry_names_resolve_to_functions():
    assert SIMILARITIES.names() == ["cosine", "dot"]
    assert SIMILARITIES.get("dot") is dot
    assert SIMILARITIES.get("cosine") is cosine
    with pytest.raises(KeyError, match="valid: cosine, dot"):
        SIMILARITIES.get("l2")


def test_dot_hand_values():
    q = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])
    d = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [4.0, 2.0, 2.0]])
    # row 0: 1+2+3, 2+0-3, 0, 4+4+6 ; row 1: 0-1+0.5, 0+0-0.5, 0, 0-2+1
    assert dot(q, d).tolist() == [[6.0, -1.0, 0.0, 14.0], [-0.5, -0.5, 0.0, -1.0]]


def test_cosine_hand_values():
    q = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    d = torch.tensor([[5.0, 0.0], [0.0, 2.0], [-1.0, -1.0], [3.0, 4.0]])
    r = 1 / math.sqrt(2)
    expected = [[1.0, 0.0, -r, 0.6], [r, r, -1.0, (3 + 4) / (5 * math.sqrt(2))]]
    assert torch.allclose(cosine(q, d), torch.tensor(expected), atol=1e-6)


def test_cosine_agrees_with_torch_functional():
    # (agreement with sentence_transformers.util.cos_sim / dot_score is in tests/test_bi.py,
    # which imports sentence-transformers anyway; importing it here would cost ~10 s)
    g = torch.Generator().manual_seed(0)
    q, d = torch.randn(4, 8, generator=g), torch.randn(6, 8, generator=g)
    ref = F.cosine_similarity(q[:, None, :], d[None, :, :], dim=-1)
    assert torch.allclose(cosine(q, d), ref, atol=1e-6)
    assert torch.allclose(dot(q, d), (q[:, None, :] * d[None, :, :]).sum(-1), atol=1e-5)


def test_cosine_of_zero_vector_is_zero_not_nan():
    out = cosine(torch.zeros(1, 3), torch.tensor([[1.0, 2.0, 3.0]]))
    assert out.tolist() == [[0.0]]


def test_cosine_equals_dot_on_unit_vectors():
    g = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(3, 5, generator=g), dim=-1)
    d = F.normalize(torch.randn(7, 5, generator=g), dim=-1)
    assert torch.allclose(cosine(q, d), dot(q, d), atol=1e-6)


@pytest.mark.parametrize("fn", [dot, cosine])
def test_gradients_flow(fn):
    q = torch.randn(2, 4, requires_grad=True)
    d = torch.randn(3, 4, requires_grad=True)
    fn(q, d).sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert d.grad is not None and d.grad.abs().sum() > 0


@pytest.mark.parametrize("fn", [dot, cosine])
def test_shape_errors_are_explained(fn):
    with pytest.raises(ValueError, match="hidden sizes differ"):
        fn(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="2-D"):
        fn(torch.zeros(3), torch.zeros(2, 3))
