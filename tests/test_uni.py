"""Packing (unirank.models.inputs) and the Uni-Encoder (unirank.models.uni)."""

from __future__ import annotations

import pytest
import torch

from unirank.errors import ConfigError, DataError
from unirank.models.base import MODELS, load_ranker
from unirank.models.inputs import TextPacker, join_turns, pack_segments
from unirank.models.masks import MASKS
from unirank.models.uni import UniEncoder

from .conftest import lively_backbone, own_copy

CTX = ["where is the train station?", ["hello", "I lost my way, where is the train station?"]]
CANDS = [
    ["turn left at the bank", "I like trains", "no", "it is two blocks north of here, next to the park"],
    ["take the bus", "good morning", "station is closed today"],
]


@pytest.fixture(scope="module")
def backbone():
    return lively_backbone(seed=0)


def make(backbone, **kw):
    torch.manual_seed(1)
    return UniEncoder(backbone, **kw)


# ---- packing -----------------------------------------------------------------------------


def test_pack_layout_literal():
    b = pack_segments([[7, 8], [9]], [[[5], [6, 6]], [[4, 4, 4]]], cls_id=1, sep_id=2, pad_id=0)
    assert b.input_ids.tolist() == [
        [1, 7, 8, 2, 1, 5, 2, 1, 6, 6, 2],
        [1, 9, 2, 1, 4, 4, 4, 2, 0, 0, 0],
    ]
    assert b.segment_ids.tolist() == [
        [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2],
        [0, 0, 0, 1, 1, 1, 1, 1, -1, -1, -1],
    ]
    # candidates restart at c (= 4 and 3): every candidate gets the same positions
    assert b.position_ids.tolist() == [
        [0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7],
        [0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0],
    ]
    assert b.token_type_ids.tolist() == [
        [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0],
    ]
    assert b.candidate_mask.tolist() == [[True, True], [True, False]]
    assert b.attention_mask.tolist()[1] == [1] * 8 + [0] * 3


def test_pack_without_candidate_cls_is_the_bert_pair_encoding(backbone):
    tok = backbone.tokenizer
    p = TextPacker(tok, candidate_cls=False)
    b = p.pack(["what is a cat?"], [["a small animal"]])
    ref = tok("what is a cat?", "a small animal")
    assert b.input_ids[0].tolist() == ref["input_ids"]
    assert b.token_type_ids[0].tolist() == ref["token_type_ids"]
    assert b.position_ids[0].tolist() == list(range(len(ref["input_ids"])))


def test_join_turns_keeps_most_recent_whole_turns():
    turns = [[1, 1, 1], [2, 2], [3, 3, 3], [4]]
    assert join_turns(turns, [9], budget=100) == [1, 1, 1, 9, 2, 2, 9, 3, 3, 3, 9, 4]
    assert join_turns(turns, [9], budget=5) == [3, 3, 3, 9, 4]
    assert join_turns(turns, [9], budget=7) == [3, 3, 3, 9, 4]  # [2,2] needs 3 more: dropped whole
    assert join_turns(turns, [9], budget=8) == [2, 2, 9, 3, 3, 3, 9, 4]
    assert join_turns(turns, [], budget=6) == [2, 2, 3, 3, 3, 4]
    assert join_turns([[1, 2, 3, 4, 5]], [9], budget=3) == [3, 4, 5]  # newest too long: its tail
    assert join_turns([], [9], budget=3) == []


def test_context_truncation_keeps_recent_turns_with_real_tokenizer(backbone):
    tok = backbone.tokenizer
    p = TextPacker(tok, max_context_length=2 + 5)
    ids = p.context_ids([["this is the oldest turn", "middle one", "newest"]])[0]
    assert tok.convert_ids_to_tokens(ids) == ["middle", "one", "[SEP]", "newest"]
    ids = p.context_ids([["old", "one two three four five six seven"]])[0]
    assert tok.convert_ids_to_tokens(ids) == ["three", "four", "five", "six", "seven"]
    packed = p.pack([["this is the oldest turn", "middle one", "newest"]], [["x"]])
    assert int((packed.segment_ids[0] == 0).sum()) == 6  # [CLS] + 4 + [SEP], within 7


def test_turn_separator_options(backbone):
    tok = backbone.tokenizer
    assert TextPacker(tok).separator_ids == [tok.sep_token_id]
    assert TextPacker(tok, turn_separator="").separator_ids == []
    assert TextPacker(tok, turn_separator="[unused1]").separator_ids == tok.convert_tokens_to_ids(["[unused1]"])
    assert TextPacker(tok, turn_separator=" | ").separator_ids == tok(" | ", add_special_tokens=False)["input_ids"]
    ids = TextPacker(tok, turn_separator="").context_ids([["a", "b"]])[0]
    assert tok.convert_ids_to_tokens(ids) == ["a", "b"]


def test_candidates_keep_their_first_tokens(backbone):
    tok = backbone.tokenizer
    p = TextPacker(tok, max_candidate_length=2 + 3)
    assert tok.convert_ids_to_tokens(p.candidate_ids(["one two three four five"])[0]) == ["one", "two", "three"]
    p = TextPacker(tok, max_candidate_length=1 + 3, candidate_cls=False)
    assert tok.convert_ids_to_tokens(p.candidate_ids(["one two three four five"])[0]) == ["one", "two", "three"]


def test_position_budget_is_checked(backbone):
    with pytest.raises(ConfigError, match="512"):
        UniEncoder(backbone, max_context_length=400, max_candidate_length=200)
    with pytest.raises(KeyError, match="valid: arrow"):
        UniEncoder(backbone, mask="square")


# ---- the model sees the mask -------------------------------------------------------------


def segment_states(model, ctx, cands, k):
    packed = model.packer.pack_ids([ctx], [cands])
    hidden = model.encode_packed(packed, model.mask)
    return hidden[0][packed.segment_ids[0] == k]


def test_backbone_really_sees_the_mask(backbone):
    ctx, a, b1, b2 = [2023, 2003], [3899, 2003], [2204, 2154], [1037, 2862, 2000, 2175]
    diag = make(backbone, mask="diag")
    # with diag, candidate 1's hidden states ignore candidate 2 (and the context)
    assert torch.allclose(segment_states(diag, ctx, [a, b1], 1), segment_states(diag, ctx, [a, b2], 1), atol=1e-6)
    assert torch.allclose(
        segment_states(diag, ctx, [a, b1], 1), segment_states(diag, [3000, 3001], [a, b1], 1), atol=1e-6
    )
    full = make(backbone, mask="full")
    diff = (segment_states(full, ctx, [a, b1], 1) - segment_states(full, ctx, [a, b2], 1)).abs().max()
    assert diff > 1e-3


# ---- scores ------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", MASKS.names())
def test_scores_are_permutation_equivariant(backbone, mask):
    model = make(backbone, mask=mask).eval()
    with torch.no_grad():
        base = model.score(CTX, CANDS)
        perms = [[3, 1, 0, 2], [2, 0, 1]]
        permuted = model.score(CTX, [[c[i] for i in p] for c, p in zip(CANDS, perms, strict=True)])
    for b, p in enumerate(perms):
        torch.testing.assert_close(permuted[b, : len(p)], base[b, p], atol=1e-5, rtol=0)


def test_equivariance_needs_restarting_positions(backbone):
    # control: with continuous positions (no restart) the same permutation changes scores
    model = make(backbone, mask="arrow_strict").eval()
    cands = [[2204, 2154], [3899, 2003, 1037]]

    def scores(cs):
        packed = model.packer.pack_ids([[2023, 2003]], [cs])
        packed = type(packed)(
            packed.input_ids,
            packed.token_type_ids,
            torch.arange(packed.input_ids.shape[1])[None],
            packed.segment_ids,
            packed.candidate_mask,
        )
        with torch.no_grad():
            return model(packed)[0]

    forward, backward = scores(cands), scores(cands[::-1])
    assert (forward - backward.flip(0)).abs().max() > 1e-4


def test_arrow_strict_scores_ignore_other_candidates_and_arrow_does_not(backbone):
    first = "turn left at the bank"
    lists = [[first, "I like trains", "no"], [first, "a completely different and much longer response here"]]
    with torch.no_grad():
        strict = make(backbone, mask="arrow_strict").eval()
        s = [strict.score([CTX[0]], [c])[0, 0] for c in lists]
        torch.testing.assert_close(s[0], s[1], atol=1e-5, rtol=0)
        arrow = make(backbone, mask="arrow").eval()
        a = [arrow.score([CTX[0]], [c])[0, 0] for c in lists]
    assert abs(float(a[0] - a[1])) > 1e-4  # the context saw the other candidates


@pytest.mark.parametrize("mask", ["arrow", "arrow_strict"])
def test_ragged_candidate_counts(backbone, mask):
    model = make(backbone, mask=mask).eval()
    cands = [CANDS[0], CANDS[1][:1]]
    with torch.no_grad():
        both = model.score(CTX, cands)
        alone0 = model.score(CTX[:1], cands[:1])
        alone1 = model.score(CTX[1:], cands[1:])
    assert both.shape == (2, 4)
    assert torch.isinf(both[1, 1:]).all() and (both[1, 1:] < 0).all()
    assert torch.isfinite(both[0]).all() and torch.isfinite(both[1, 0])
    torch.testing.assert_close(both[0], alone0[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(both[1, :1], alone1[0], atol=1e-5, rtol=0)


def test_empty_candidate_lists(backbone):
    model = make(backbone).eval()
    with torch.no_grad():
        out = model.score(CTX, [["yes"], []])
        assert out.shape == (2, 1) and torch.isfinite(out[0, 0]) and out[1, 0] == float("-inf")
        assert model.score(CTX, [[], []]).shape == (2, 0)


def test_chunked_scoring_of_100_candidates_is_exact_with_arrow_strict(backbone):
    cands = [f"candidate number {i} says {'hello ' * (i % 4)}" for i in range(100)]
    strict = make(backbone, mask="arrow_strict", max_candidate_length=16).eval()
    with torch.no_grad():
        whole = (
            make(backbone, mask="arrow_strict", max_candidate_length=16, chunk_size=None)
            .eval()
            .score([CTX[1]], [cands])
        )
        strict.chunk_size = 7
        chunked = strict.score([CTX[1]], [cands])
        ranked = torch.tensor(strict.rank(CTX[1], cands, chunk_size=30))
    assert whole.shape == (1, 100)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(ranked, whole[0], atol=1e-5, rtol=0)
    # with arrow the context only sees its chunk, so chunking changes scores
    with torch.no_grad():
        arrow = make(backbone, mask="arrow", max_candidate_length=16, chunk_size=None).eval()
        a_whole = arrow.score([CTX[1]], [cands])
        arrow.chunk_size = 7
        a_chunked = arrow.score([CTX[1]], [cands])
    assert (a_whole - a_chunked).abs().max() > 1e-4


def test_score_is_linear_head_on_mean_of_candidate_tokens_with_cls_and_sep(backbone):
    model = make(backbone, mask="arrow").eval()
    packed = model.packer.pack(CTX[:1], [CANDS[0][:2]])
    with torch.no_grad():
        hidden = model.encode_packed(packed, "arrow")[0]
        seg = packed.segment_ids[0]
        ids = packed.input_ids[0]
        for k in (1, 2):
            tokens = seg == k
            # the pooled tokens start with [CLS] and end with [SEP]
            assert ids[tokens][0] == 101 and ids[tokens][-1] == 102
            expected = model.head(hidden[tokens].mean(0))
            torch.testing.assert_close(model(packed)[0, k - 1], expected[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("segmented", [False, True])
def test_cls_pooling_scores_the_candidates_own_cls(backbone, segmented):
    """candidate_pooling="cls": the head reads the vector of each candidate's own [CLS] (not the
    context's), and a slot without a candidate stays -inf."""
    model = make(backbone, mask="arrow", candidate_pooling="cls", segmented=segmented).eval()
    mean = make(backbone, mask="arrow", segmented=segmented).eval()
    packed = model.packer.pack(CTX, CANDS)
    with torch.no_grad():
        scores = model(packed)
        hidden = model.encode_packed(packed, "arrow")
        for b, cands in enumerate(CANDS):
            seg, ids = packed.segment_ids[b], packed.input_ids[b]
            for k in range(1, len(cands) + 1):
                first = int((seg == k).nonzero()[0])
                assert ids[first] == 101 and int((seg == 0).nonzero()[0]) != first
                expected = model.head(hidden[b, first])[0]
                torch.testing.assert_close(scores[b, k - 1], expected, atol=1e-5, rtol=1e-5)
        assert scores[1, 3] == float("-inf")
        assert not torch.allclose(scores[0], mean(packed)[0])  # the same weights pool differently
        empty = model.packer.pack(CTX, [[], []])  # no candidate at all: (B, 0) like the mean pooling
        assert model(empty).shape == mean(empty).shape == (2, 0)


def test_candidate_pooling_is_checked_and_saved(backbone, tmp_path):
    with pytest.raises(ConfigError, match="candidate_pooling must be 'mean' or 'cls'; got 'max'"):
        make(backbone, candidate_pooling="max")
    with pytest.raises(ConfigError, match="needs candidate_cls true"):
        make(backbone, candidate_pooling="cls", candidate_cls=False)
    assert make(backbone).settings()["candidate_pooling"] == "mean"  # the paper's pooling by default
    model = make(backbone, candidate_pooling="cls").eval()
    model.save(tmp_path / "m")
    loaded = load_ranker(tmp_path / "m")
    assert loaded.candidate_pooling == "cls"
    with torch.no_grad():
        torch.testing.assert_close(loaded.score(CTX, CANDS), model.score(CTX, CANDS), atol=1e-6, rtol=0)


def test_save_load_round_trip(backbone, tmp_path):
    model = make(backbone, mask="arrow_strict", max_context_length=64, chunk_size=5).eval()
    with torch.no_grad():
        before = model.score(CTX, CANDS)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["backbone", "head.safetensors", "unirank_model.json"]
    assert not list(tmp_path.glob(".*"))  # no temp folders left behind
    for loaded in (
        UniEncoder.load(tmp_path / "m"),
        UniEncoder.from_pretrained(tmp_path / "m"),
        load_ranker(tmp_path / "m"),
    ):
        assert isinstance(loaded, UniEncoder) and loaded.settings() == model.settings()
        with torch.no_grad():
            torch.testing.assert_close(loaded.score(CTX, CANDS), before, atol=1e-6, rtol=0)
    model.save(tmp_path / "m")  # overwriting a saved model is fine
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a unirank model folder"):
        model.save(tmp_path / "data")
    assert (tmp_path / "data" / "keep.txt").exists()


def test_registered_and_gradients_reach_backbone_and_head(backbone):
    assert MODELS.get("uni") is UniEncoder
    model = make(own_copy(backbone), mask="arrow")
    model.train()
    scores = model.score(CTX, [CANDS[0], CANDS[1] + ["pad"]])
    loss = torch.nn.functional.cross_entropy(scores, torch.tensor([0, 1]))
    loss.backward()
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
    emb = model.encoder.embeddings.word_embeddings.weight.grad
    assert emb is not None and emb.abs().sum() > 0
    assert model.encoder.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_loading_a_broken_folder_names_the_file_and_line(tmp_path):
    (tmp_path / "unirank_model.json").write_text('{\n  "format": "unirank-model",\n  "kind": \n}\n')
    with pytest.raises(DataError, match=r"unirank_model.json:4: malformed JSON"):
        UniEncoder.load(tmp_path)
    with pytest.raises(DataError, match="not a unirank model folder"):
        UniEncoder.load(tmp_path / "missing")


# ---- the segment-factorised pass -----------------------------------------------------------


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("mask", ["arrow", "arrow_strict"])
def test_segmented_pass_equals_the_masked_pass(backbone, mask, pooling):
    """Same scores and same gradients as one masked pass over the packed rows (ragged contexts
    and candidate lists, so both paths see padding)."""
    seg = make(backbone, mask=mask, segmented=True, candidate_pooling=pooling)
    masked = make(backbone, mask=mask, segmented=False, candidate_pooling=pooling)
    assert seg.uses_segmented_pass and not masked.uses_segmented_pass
    masked.load_state_dict(seg.state_dict())
    cands = [CANDS[0], CANDS[1][:2]]
    for m in (seg, masked):
        m.eval()
    with torch.no_grad():
        torch.testing.assert_close(seg.score(CTX, cands), masked.score(CTX, cands), atol=1e-5, rtol=1e-5)
    grads = []
    for m in (seg, masked):
        m.train()
        for mod in m.modules():  # no dropout, so the two passes are comparable
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
        m.zero_grad()
        s = m.score(CTX, cands)
        torch.nn.functional.cross_entropy(s, torch.tensor([0, 1])).backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], atol=1e-5, rtol=1e-4, msg=n)


@pytest.mark.parametrize("mask", ["arrow", "arrow_strict"])
def test_segmented_hidden_states_equal_the_masked_pass_at_every_real_token(backbone, mask):
    from unirank.models.backbone import encode_tokens
    from unirank.models.masks import build_mask
    from unirank.models.segmented import segmented_hidden_states

    m = make(backbone, mask=mask).eval()
    packed = m.packer.pack(CTX, [CANDS[0], CANDS[1][:2]])
    with torch.no_grad():
        got = segmented_hidden_states(m.encoder, packed, mask == "arrow")
        want = encode_tokens(
            m.encoder,
            packed.input_ids,
            build_mask(packed.segment_ids, mask),
            token_type_ids=packed.token_type_ids,
            position_ids=packed.position_ids,
        )
    real = packed.segment_ids >= 0
    assert got.shape == want.shape and not real.all()  # ragged rows: padding on the second
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)
    assert not got[~real].any()


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("mask", ["arrow", "arrow_strict"])
def test_mlm_training_through_the_segmented_pass_equals_the_masked_pass(backbone, mask, pooling, monkeypatch):
    """Inside masked_lm() the segmented pass is taken too (the MLM loss reads the context's
    and the candidates' states from segmented_hidden_states): same masked tokens, same scores,
    same MLM loss and same gradients - head, MLM head and backbone - as the masked pass."""
    import unirank.models.uni as uni_mod

    calls = []
    real = uni_mod.segmented_hidden_states
    monkeypatch.setattr(uni_mod, "segmented_hidden_states", lambda *a, **k: calls.append(1) or real(*a, **k))
    seg = make(own_copy(backbone), mask=mask, segmented=True, candidate_pooling=pooling)
    masked = make(own_copy(backbone), mask=mask, segmented=False, candidate_pooling=pooling)
    for m in (seg, masked):
        m.add_mlm_head(seed=3)
    masked.load_state_dict(seg.state_dict())
    cands = [CANDS[0], CANDS[1][:2]]
    out = []
    for m in (seg, masked):
        m.train()
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
        m.zero_grad()
        with m.masked_lm(0.3, torch.Generator().manual_seed(7)) as mlm:
            s = m.score(CTX, cands)
        loss = torch.nn.functional.cross_entropy(s, torch.tensor([0, 1])) + mlm.loss()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
        out.append((s.detach(), mlm.masked, mlm.loss().detach(), grads))
    assert calls == [1]  # one chunk, through the segmented pass
    (s0, n0, l0, g0), (s1, n1, l1, g1) = out
    assert n0 == n1 > 0
    torch.testing.assert_close(s0, s1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(l0, l1, atol=1e-5, rtol=1e-5)
    assert g0.keys() == g1.keys() and any(n.startswith("mlm_head.") for n in g0)
    for n in g0:
        torch.testing.assert_close(g0[n], g1[n], atol=1e-5, rtol=1e-4, msg=n)


def test_segmented_pass_only_for_arrow_masks(backbone):
    assert not make(backbone, mask="diag", segmented=True).uses_segmented_pass
    assert not make(backbone, mask="full", segmented=True).uses_segmented_pass
    assert make(backbone, mask="arrow").settings()["segmented"] == "auto"


def test_candidate_layout_and_the_auto_thresholds():
    from unirank.models.uni import SEGMENTED_MIN_FILL, SEGMENTED_MIN_WIDTH, candidate_layout, segmented_pays_off

    seg = torch.tensor([[0, 0, 1, 1, 2, 2, 2, 2, -1], [0, 1, -1, -1, -1, -1, -1, -1, -1]])
    assert candidate_layout(seg) == (4, 7 / 12)  # 2 + 4 + 1 tokens in 3 real slots of width 4
    assert candidate_layout(torch.tensor([[0, 0, -1]])) == (0, 1.0)  # no candidate at all
    assert candidate_layout(torch.tensor([[0, 1, 1, 2, 2]])) == (2, 1.0)
    # the measured crossovers (bench/uni_pass_sweep.py): masked wins for short replies on a GPU
    assert SEGMENTED_MIN_WIDTH == {("cuda", False): 128, ("cuda", True): 256, ("cpu", False): 64, ("cpu", True): 64}
    assert SEGMENTED_MIN_FILL == 0.5
    assert not segmented_pays_off("cuda", False, 127) and segmented_pays_off("cuda", False, 128)
    assert not segmented_pays_off("cuda", True, 255) and segmented_pays_off("cuda", True, 256)
    assert not segmented_pays_off("cpu", False, 63) and segmented_pays_off("cpu", False, 64)
    assert segmented_pays_off("mps", False, 64)  # other devices follow the CPU
    # one long reply among short ones: the segmented pass would pad them all to its length
    assert not segmented_pays_off("cpu", False, 128, fill=0.49) and segmented_pays_off("cpu", False, 128, fill=0.5)


def test_auto_takes_the_segmented_pass_for_long_candidates_only(backbone, monkeypatch):
    import unirank.models.uni as uni_mod

    calls = []
    real = uni_mod.segmented_candidate_states
    monkeypatch.setattr(uni_mod, "segmented_candidate_states", lambda *a, **k: calls.append(1) or real(*a, **k))
    m = make(backbone, mask="arrow", max_candidate_length=128).eval()
    masked = make(backbone, mask="arrow", max_candidate_length=128, segmented=False).eval()
    long_doc = " ".join(["the station is two blocks north of the park"] * 12)  # > 64 tokens
    with torch.no_grad():
        m.score(CTX[:1], [CANDS[0]])  # replies of a few tokens: masked pass
        assert calls == []
        got = m.score(CTX[:1], [[long_doc, "no"]])
        assert calls == [1]
        torch.testing.assert_close(got, masked.score(CTX[:1], [[long_doc, "no"]]), atol=1e-5, rtol=1e-5)
    assert not make(backbone, mask="diag").takes_segmented_pass(m.packer.pack(CTX[:1], [[long_doc]]))
    with torch.no_grad():  # one long reply among nine short ones: little of the padded grid is real
        m.score(CTX[:1], [[long_doc] + ["no"] * 9])
    assert calls == [1]
    assert (
        m.may_take_segmented_pass and make(backbone, max_candidate_length=128, segmented=True).may_take_segmented_pass
    )
    assert not make(backbone, max_candidate_length=32).may_take_segmented_pass  # never reaches 64 tokens on CPU
    assert not make(backbone, max_candidate_length=128, segmented=False).may_take_segmented_pass


def test_segmented_setting_is_checked_and_saved(backbone, tmp_path):
    with pytest.raises(ConfigError, match="true, false or auto"):
        make(backbone, segmented="sometimes")
    for value in (True, False, "auto"):
        make(backbone, segmented=value).save(tmp_path / str(value))
        assert load_ranker(tmp_path / str(value)).segmented == value
