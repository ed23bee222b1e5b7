"""Cross-encoder: standard pair encoding, pooling, and equality with a one-candidate Uni-Encoder."""

from __future__ import annotations

import pytest
import torch

from unirank.models.base import MODELS, load_ranker
from unirank.models.cross import CrossEncoder
from unirank.models.uni import UniEncoder

from .conftest import lively_backbone, own_copy

CTX = ["what is the capital of france?", ["hi there", "which city is the capital of france?"]]
CANDS = [["paris is the capital", "berlin", "the eiffel tower is in paris"], ["paris"]]


@pytest.fixture(scope="module")
def backbone():
    return lively_backbone(seed=5)


def make(backbone, **kw):
    torch.manual_seed(2)
    return CrossEncoder(backbone, **kw).eval()


@pytest.mark.parametrize("candidate_cls", [False, True])
@pytest.mark.parametrize("mask", ["arrow", "full"])
def test_uni_with_one_candidate_equals_cross(backbone, candidate_cls, mask):
    cross = make(backbone, pooling="candidate_mean", candidate_cls=candidate_cls)
    uni = UniEncoder(backbone, mask=mask, candidate_cls=candidate_cls, max_candidate_length=256).eval()
    uni.head.load_state_dict(cross.head.state_dict())
    with torch.no_grad():
        c = cross.score(CTX, CANDS)
        u = torch.stack(
            [uni.score([ctx], [[cand]])[0, 0] for ctx, cands in zip(CTX, CANDS, strict=True) for cand in cands]
        )
        flat_c = torch.cat([c[0, :3], c[1, :1]])
    torch.testing.assert_close(u, flat_c, atol=1e-5, rtol=0)
    # the same packed sequence underlies both
    assert torch.equal(
        uni.packer.pack([CTX[0]], [[CANDS[0][0]]]).input_ids, cross.packer.pack([CTX[0]], [[CANDS[0][0]]]).input_ids
    )


def test_uni_arrow_strict_is_not_a_cross_encoder(backbone):
    # control for the test above: if the context cannot see the candidate, scores differ
    cross = make(backbone, pooling="candidate_mean", candidate_cls=True)
    uni = UniEncoder(backbone, mask="arrow_strict", max_candidate_length=256).eval()
    uni.head.load_state_dict(cross.head.state_dict())
    with torch.no_grad():
        assert (
            abs(float(uni.score([CTX[0]], [CANDS[0][:1]])[0, 0] - cross.score([CTX[0]], [CANDS[0][:1]])[0, 0])) > 1e-4
        )


def hf_hidden(backbone, ctx, cand):
    enc = backbone.tokenizer(ctx, cand, return_tensors="pt")
    with torch.no_grad():
        return backbone.model(**enc).last_hidden_state[0]


def test_cls_and_mean_pooling_match_plain_transformers_on_the_bert_pair(backbone):
    ctx, cand = CTX[0], CANDS[0][0]
    hidden = hf_hidden(backbone, ctx, cand)
    for pooling, pooled in [("cls", hidden[0]), ("mean", hidden.mean(0))]:
        model = make(backbone, pooling=pooling)
        with torch.no_grad():
            torch.testing.assert_close(model.score([ctx], [[cand]])[0, 0], model.head(pooled)[0], atol=1e-5, rtol=0)
    # candidate_mean: the tokens after the first [SEP] ("paris is the capital [SEP]")
    model = make(backbone, pooling="candidate_mean")
    types = backbone.tokenizer(ctx, cand)["token_type_ids"]
    cand_rows = torch.tensor(types, dtype=torch.bool)
    with torch.no_grad():
        expected = model.head(hidden[cand_rows].mean(0))[0]
        torch.testing.assert_close(model.score([ctx], [[cand]])[0, 0], expected, atol=1e-5, rtol=0)


def test_dialogue_context_is_turns_joined_by_sep(backbone):
    model = make(backbone)
    with torch.no_grad():
        a = model.score([CTX[1]], [["paris"]])
        b = make(backbone).score([" [SEP] ".join(CTX[1])], [["paris"]])
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_ragged_and_chunked(backbone):
    model = make(backbone, chunk_size=None)
    with torch.no_grad():
        whole = model.score(CTX, CANDS)
        model.chunk_size = 2
        chunked = model.score(CTX, CANDS)
        alone = model.score(CTX[1:], CANDS[1:])
    assert whole.shape == (2, 3)
    assert torch.isinf(whole[1, 1:]).all() and (whole[1, 1:] < 0).all()
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(whole[1, :1], alone[0], atol=1e-5, rtol=0)
    with torch.no_grad():
        assert model.score(CTX, [[], []]).shape == (2, 0)


def test_save_load_round_trip(backbone, tmp_path):
    model = make(backbone, pooling="mean", chunk_size=3)
    with torch.no_grad():
        before = model.score(CTX, CANDS)
    model.save(tmp_path / "cross")
    for loaded in (CrossEncoder.load(tmp_path / "cross"), load_ranker(tmp_path / "cross")):
        assert isinstance(loaded, CrossEncoder) and loaded.settings() == model.settings()
        with torch.no_grad():
            torch.testing.assert_close(loaded.score(CTX, CANDS), before, atol=1e-6, rtol=0)
    with pytest.raises(Exception, match="not 'uni'"):
        UniEncoder.load(tmp_path / "cross")


def test_registered_and_gradients_reach_backbone_and_head(backbone):
    assert MODELS.get("cross") is CrossEncoder
    model = make(own_copy(backbone)).train()
    scores = model.score(CTX, CANDS)
    torch.nn.functional.cross_entropy(scores, torch.tensor([0, 0])).backward()
    assert model.head.weight.grad.abs().sum() > 0
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.encoder.encoder.layer[-1].output.dense.weight.grad.abs().sum() > 0


def _published_cross_encoder(folder, num_labels=1, model_type="bert"):
    """A tiny random ``*ForSequenceClassification`` checkpoint saved like a hub cross-encoder."""
    import transformers as tf

    from unirank.models.backbone import packaged_model_dir

    tok = tf.AutoTokenizer.from_pretrained(str(packaged_model_dir()))
    kw = dict(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=num_labels,
    )
    torch.manual_seed(11)
    model = {
        "bert": lambda: tf.BertForSequenceClassification(tf.BertConfig(**kw)),
        # RoBERTa layout with the MiniLM vocabulary: pad id 0 (positions start at 1), one token type
        "roberta": lambda: tf.RobertaForSequenceClassification(
            tf.RobertaConfig(**kw, pad_token_id=0, type_vocab_size=1, max_position_embeddings=513)
        ),
        "electra": lambda: tf.ElectraForSequenceClassification(tf.ElectraConfig(**kw, embedding_size=32)),
    }[model_type]()
    for p in model.parameters():  # livelier than the default init, so a wrong head shows in the scores
        p.data.normal_(0, 0.2)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model.eval(), tok


def test_a_published_cross_encoder_checkpoint_scores_its_own_logits(tmp_path):
    """CrossEncoder.from_pretrained on a BertForSequenceClassification folder keeps the pooler
    and classifier: its scores are the checkpoint's logits (also after a unirank save/load)."""
    ref, tok = _published_cross_encoder(tmp_path / "ce")
    ce = CrossEncoder.from_pretrained(tmp_path / "ce").eval()
    assert ce.settings()["head_activation"] == "tanh" and ce.settings()["pooling"] == "cls"
    query, docs = "what is the capital of france?", ["paris is the capital", "berlin is in germany", "x"]
    with torch.no_grad():
        want = ref(**tok([query] * 3, docs, return_tensors="pt", padding=True)).logits[:, 0]
        got = ce.score([query], [docs])[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    ce.save(tmp_path / "saved")
    again = load_ranker(tmp_path / "saved").eval()
    with torch.no_grad():
        torch.testing.assert_close(again.score([query], [docs])[0], want, atol=1e-5, rtol=1e-5)
    with pytest.raises(Exception, match="does not fit the classification head"):
        CrossEncoder.from_pretrained(tmp_path / "ce", pooling="mean")


def test_a_published_roberta_cross_encoder_scores_its_own_logits(tmp_path):
    """RoBERTa-family classifiers (e.g. bge-reranker, XLM-R): head dense+tanh+out_proj on the
    first token, pair encoding ``<s> A </s></s> B </s>``, token type 0, positions from pad+1."""
    ref, tok = _published_cross_encoder(tmp_path / "ce", model_type="roberta")
    ce = CrossEncoder.from_pretrained(tmp_path / "ce").eval()
    assert ce.settings()["candidate_sep"] is True and ce.settings()["candidate_token_type"] == 0
    query, docs = "what is the capital of france?", ["paris is the capital", "berlin is in germany"]
    q = tok(query, add_special_tokens=False)["input_ids"]
    want = []
    with torch.no_grad():
        for d in docs:
            ids = [
                tok.cls_token_id,
                *q,
                tok.sep_token_id,
                tok.sep_token_id,
                *tok(d, add_special_tokens=False)["input_ids"],
                tok.sep_token_id,
            ]
            want.append(
                ref(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits[
                    0, 0
                ]
            )
        got = ce.score([query], [docs])[0]
    torch.testing.assert_close(got, torch.stack(want), atol=1e-5, rtol=1e-5)
    ce.save(tmp_path / "saved")
    with torch.no_grad():
        torch.testing.assert_close(load_ranker(tmp_path / "saved").eval().score([query], [docs])[0], got)


@pytest.mark.parametrize("num_labels,model_type,match", [(2, "bert", "with 2 labels"), (1, "electra", "not 'electra'")])
def test_unsupported_classification_checkpoints_are_refused(tmp_path, num_labels, model_type, match):
    """Rather than scoring with a random head."""
    from unirank.errors import ConfigError

    _published_cross_encoder(tmp_path / "ce", num_labels=num_labels, model_type=model_type)
    with pytest.raises(ConfigError, match=match):
        CrossEncoder.from_pretrained(tmp_path / "ce")


def test_roberta_style_backbones_get_their_position_offset():
    """RoBERTa numbers real tokens from padding_idx + 1: packed rows (explicit 0-based positions)
    must be shifted, or every token reads the wrong position embedding."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    from unirank.models.backbone import Backbone, packaged_model_dir, position_offset

    tok = AutoTokenizer.from_pretrained(str(packaged_model_dir()))
    torch.manual_seed(3)
    model = RobertaModel(
        RobertaConfig(
            vocab_size=tok.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            pad_token_id=0,
            max_position_embeddings=130,
            type_vocab_size=1,
        ),
        add_pooling_layer=False,
    ).eval()
    assert position_offset(model) == 1
    ce = CrossEncoder(
        Backbone(model, tok, "tiny-roberta"),
        pooling="mean",
        max_context_length=64,
        max_candidate_length=65,
        candidate_token_type=0,
    ).eval()
    assert ce.backbone.max_positions == 129
    enc = tok("what is the capital of france?", "paris is the capital", return_tensors="pt")
    with torch.no_grad():
        want = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state.mean(
            1
        )  # default positions
        got = ce.score(["what is the capital of france?"], [["paris is the capital"]])[0, 0]
    torch.testing.assert_close(got, ce.head(want)[0, 0], atol=1e-5, rtol=1e-5)
