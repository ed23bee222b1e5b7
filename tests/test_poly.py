"""Poly-encoder: the attention kernel, masking of padded context tokens, in-batch scoring."""

from __future__ import annotations

import math

import pytest
import torch

from unirank.errors import ConfigError
from unirank.models.base import MODELS, load_ranker
from unirank.models.poly import PolyEncoder, poly_attention

from .conftest import lively_backbone, own_copy

CTX = ["is it going to rain tomorrow?", ["hey", "what will the weather be like tomorrow in the north?"]]
CANDS = [["yes, take an umbrella", "I love pizza", "sunny all day"], ["cold and windy"]]


@pytest.fixture(scope="module")
def backbone():
    return lively_backbone(seed=8)


def make(backbone, **kw):
    torch.manual_seed(3)
    return PolyEncoder(backbone, **kw).eval()


def test_poly_attention_hand_computed():
    # two queries over three keys (the last masked); values are 1-D for readability
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    k = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])
    v = torch.tensor([[[10.0], [20.0], [1000.0]]])
    out = poly_attention(q, k, v, torch.tensor([[True, True, False]]))
    # query 1: logits (1, 0) -> weights (e, 1)/(e+1); query 2: logits (0, 2)
    w1 = math.e / (math.e + 1)
    w2 = math.exp(2) / (1 + math.exp(2))
    assert out[0, :, 0].tolist() == pytest.approx([10 * w1 + 20 * (1 - w1), 10 * (1 - w2) + 20 * w2], abs=1e-5)
    # "sqrt" scaling halves... scales the logits by 1/sqrt(2)
    s = poly_attention(q, k, v, torch.tensor([[True, True, False]]), scale=2**-0.5)
    w1s = math.exp(2**-0.5) / (math.exp(2**-0.5) + 1)
    assert float(s[0, 0, 0]) == pytest.approx(10 * w1s + 20 * (1 - w1s), abs=1e-5)
    # without the mask the 1000-valued key dominates
    assert float(poly_attention(q, k, v)[0, 0, 0]) > 900


def test_shapes(backbone):
    model = make(backbone, n_codes=5)
    with torch.no_grad():
        assert model.embed_contexts(CTX).shape == (2, 5, 32)
        assert model.embed_candidates(CANDS[0]).shape == (3, 32)
        assert model.embed_candidates([]).shape == (0, 32)
        assert model.score(CTX, CANDS).shape == (2, 3)
        assert model.score_shared(CTX, CANDS[0]).shape == (2, 3)
    assert model.codes.shape == (5, 32)


def test_codes_attention_ignores_padded_context_tokens(backbone):
    model = make(backbone)
    with torch.no_grad():
        batched = model.embed_contexts(["short", CTX[1]])
        alone = model.embed_contexts(["short"])
    packed = model.packer.pack_contexts(["short", CTX[1]])
    assert (packed.segment_ids[0] < 0).any()  # "short" really is padded in the batch
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=0)


def test_matches_a_hand_written_reference(backbone):
    # encode with plain transformers, then the poly-encoder formulas written out
    model = make(backbone, n_codes=3)
    tok, enc = backbone.tokenizer, backbone.model
    ctx, cand = CTX[0], CANDS[0][0]
    with torch.no_grad():
        h = enc(**tok(ctx, return_tensors="pt")).last_hidden_state[0]  # (L, H)
        c = enc(**tok(cand, return_tensors="pt")).last_hidden_state[0].mean(0)  # mean pooling
        ctx_vecs = torch.softmax(model.codes @ h.T, dim=-1) @ h  # (m, H)
        final = torch.softmax(ctx_vecs @ c, dim=-1) @ ctx_vecs
        expected = final @ c
        torch.testing.assert_close(model.score([ctx], [[cand]])[0, 0], expected, atol=1e-4, rtol=1e-5)
        cls_model = make(backbone, n_codes=3, candidate_pooling="cls", codes_attention="sqrt", poly_attention="sqrt")
        c = enc(**tok(cand, return_tensors="pt")).last_hidden_state[0, 0]
        d = h.shape[-1] ** -0.5
        ctx_vecs = torch.softmax(cls_model.codes @ h.T * d, dim=-1) @ h
        expected = (torch.softmax(ctx_vecs @ c * d, dim=-1) @ ctx_vecs) @ c
        torch.testing.assert_close(cls_model.score([ctx], [[cand]])[0, 0], expected, atol=1e-4, rtol=1e-5)


def test_in_batch_scoring_equals_per_pair_scoring(backbone):
    model = make(backbone)
    shared = CANDS[0] + CANDS[1]
    with torch.no_grad():
        in_batch = model.score_shared(CTX, shared)
        pairs = torch.tensor([[model.score([ctx], [[c]])[0, 0].item() for c in shared] for ctx in CTX])
        per_list = model.score(CTX, CANDS)
        pre = model.score_embeddings(model.embed_contexts(CTX), model.embed_candidates(shared))
    torch.testing.assert_close(in_batch, pairs, atol=1e-5, rtol=0)
    torch.testing.assert_close(pre, in_batch, atol=1e-6, rtol=0)
    torch.testing.assert_close(per_list[0], in_batch[0, :3], atol=1e-5, rtol=0)
    torch.testing.assert_close(per_list[1, :1], in_batch[1, 3:], atol=1e-5, rtol=0)
    assert torch.isinf(per_list[1, 1:]).all() and (per_list[1, 1:] < 0).all()


def test_embed_candidates_is_chunk_independent(backbone):
    texts = [f"reply {i} " + "word " * (i % 5) for i in range(11)]
    with torch.no_grad():
        whole = make(backbone, chunk_size=100).embed_candidates(texts)
        chunked = make(backbone, chunk_size=3).embed_candidates(texts)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)


def test_settings_are_checked(backbone):
    with pytest.raises(ConfigError, match="candidate_pooling"):
        PolyEncoder(backbone, candidate_pooling="candidate_mean")
    with pytest.raises(KeyError, match="valid: basic, sqrt"):
        PolyEncoder(backbone, codes_attention="multihead")


@pytest.mark.parametrize("shared", [True, False])
def test_save_load_round_trip(backbone, tmp_path, shared):
    model = make(backbone, n_codes=4, shared_encoder=shared)
    if not shared:  # make the candidate encoder really differ from the context encoder
        with torch.no_grad():
            model.candidate_encoder.embeddings.word_embeddings.weight.mul_(1.5)
    with torch.no_grad():
        before = model.score(CTX, CANDS)
    model.save(tmp_path / "poly")
    folders = sorted(p.name for p in (tmp_path / "poly").iterdir())
    assert ("candidate_backbone" in folders) == (not shared)
    for loaded in (PolyEncoder.load(tmp_path / "poly"), load_ranker(tmp_path / "poly")):
        assert loaded.settings() == model.settings()
        with torch.no_grad():
            torch.testing.assert_close(loaded.score(CTX, CANDS), before, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shared", [True, False])
def test_registered_and_gradients_reach_encoders_and_codes(backbone, shared):
    assert MODELS.get("poly") is PolyEncoder
    model = make(own_copy(backbone), shared_encoder=shared).train()
    scores = model.score_shared(CTX, [CANDS[0][0], CANDS[1][0]])
    torch.nn.functional.cross_entropy(scores, torch.tensor([0, 1])).backward()
    assert model.codes.grad.abs().sum() > 0
    encoders = [model.encoder] + ([] if shared else [model.candidate_encoder])
    for enc in encoders:
        assert enc.embeddings.word_embeddings.weight.grad.abs().sum() > 0
        assert enc.encoder.layer[0].attention.self.key.weight.grad.abs().sum() > 0
    if not shared:
        assert model.candidate_encoder is not model.encoder
