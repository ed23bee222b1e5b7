"""The Uni-Encoder training recipe (issue 17): in-batch candidates in a seeded order, the MLM
auxiliary loss, speaker tokens and the Noam schedule with configurable AdamW betas."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from unirank.config import from_dict
from unirank.errors import ConfigError
from unirank.models.backbone import tiny_backbone
from unirank.models.base import Ranker, load_ranker
from unirank.models.cross import CrossEncoder
from unirank.models.inputs import TextPacker, mark_speakers
from unirank.models.mlm_aux import maskable_tokens
from unirank.models.poly import PolyEncoder
from unirank.models.uni import UniEncoder
from unirank.train import TrainConfig, batch_backward, pool_layout, shuffle_columns, train, warm_mlm_head
from unirank.training.data import Row, epoch_rows, examples_from_dialogues
from unirank.training.schedules import SCHEDULES
from unirank.types import Candidate, DialogueExample

from .conftest import lively_backbone

QUIET = {"progress": False, "log": lambda m: None}
SPEAKERS = ["[unused1]", "[unused2]"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# --------------------------------------------------------------------------- Noam schedule


def test_noam_values_at_hand_computed_steps():
    """warmup 4: steps 1..4 (0-based 0..3) rise linearly to 1, then 1/sqrt decay: sqrt(4/n)."""
    noam = SCHEDULES.get("noam")
    assert [noam(s, 4, 1000) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert noam(4, 4, 1000) == pytest.approx(math.sqrt(4 / 5))  # 0.894427
    assert noam(8, 4, 1000) == pytest.approx(2 / 3)  # n = 9: sqrt(4/9)
    assert noam(15, 4, 1000) == pytest.approx(0.5)  # n = 16
    assert noam(99, 4, 100) == pytest.approx(0.2)  # n = 100; no decay to 0 at the end
    assert noam(0, 0, 10) == 1.0 and noam(3, 0, 10) == pytest.approx(0.5)  # no warmup: 1/sqrt(n)


def test_noam_equals_the_official_uni_encoder_formula():
    """train_dist.py: lr / (d**-0.5 * w**-0.5), then LambdaLR factor d**-0.5 * min(n**-0.5, n * w**-1.5)."""
    d, w, base = 768, 3500, 2e-4
    peak = base / (d**-0.5 * w**-0.5)
    for n in (1, 2, 100, 3499, 3500, 3501, 10_000, 50_000):
        official = peak * d**-0.5 * min(n**-0.5, n * w**-1.5)
        assert base * SCHEDULES.get("noam")(n - 1, w, 0) == pytest.approx(official, rel=1e-12)


def test_noam_and_betas_reach_the_optimizer(tmp_path):
    cfg = _cfg(tmp_path, schedule="noam", adam_betas=[0.9, 0.98], warmup_steps=2, epochs=1, lr=1e-3)
    summary = train(cfg, model=_uni(), examples=_examples(), **QUIET)
    lines = [json.loads(x) for x in (Path(summary["out"]) / "metrics.jsonl").read_text().splitlines() if '"lr"' in x]
    assert [r["lr"] for r in lines] == pytest.approx([5e-4, 1e-3])  # 2 steps of batch 4, warmup 2: 1/2, 1
    (ckpt,) = (Path(summary["out"]) / "checkpoints").glob("step-0000002*")  # "-end" when the step ends the epoch
    opt = json.loads((ckpt / "optimizer.json").read_text())
    assert all(g["betas"] == [0.9, 0.98] for g in opt["param_groups"])


# --------------------------------------------------------------------------- speaker tokens


def test_speaker_tokens_count_back_from_the_newest_turn():
    assert mark_speakers([[5], [6], [7]], [1, 2]) == [[2, 5], [1, 6], [2, 7]]
    assert mark_speakers([[6], [7]], [1, 2]) == [[1, 6], [2, 7]]
    assert mark_speakers([[7]], [1, 2, 3]) == [[3, 7]]


def test_packer_marks_turns_and_keeps_the_marks_when_truncating():
    tok = tiny_backbone().tokenizer
    p = TextPacker(tok, max_context_length=10, speaker_tokens=SPEAKERS)
    show = tok.convert_ids_to_tokens
    assert show(p.context_ids([["hello", "how are you", "fine"]])[0]) == [
        "[unused2]",
        "hello",
        "[unused1]",
        "how",
        "are",
        "you",
        "[unused2]",
        "fine",
    ]
    # 8 tokens fit; the oldest turn goes, the others keep the tags they had
    assert show(p.context_ids([["one two", "hello", "how are you", "fine"]])[0]) == [
        "[unused2]",
        "hello",
        "[unused1]",
        "how",
        "are",
        "you",
        "[unused2]",
        "fine",
    ]
    assert p.separator_ids == []  # the speaker token marks the boundary
    with_sep = TextPacker(tok, max_context_length=16, speaker_tokens=SPEAKERS, turn_separator="[SEP]")
    assert show(with_sep.context_ids([["hi", "yo"]])[0]) == ["[unused1]", "hi", "[SEP]", "[unused2]", "yo"]
    assert show(p.candidate_ids(["fine thanks"])[0]) == ["fine", "thanks"]  # candidates get no speaker token
    assert {tok.convert_tokens_to_ids(t) for t in SPEAKERS} <= p.structure_ids
    with pytest.raises(ConfigError, match="speaker_tokens"):
        TextPacker(tok, speaker_tokens=["no-such-token-xyz"])


@pytest.mark.parametrize("cls", [UniEncoder, CrossEncoder, PolyEncoder])
def test_speaker_tokens_are_saved_with_the_model(tmp_path, cls):
    m = cls(tiny_backbone(hidden=16), max_context_length=16, max_candidate_length=8, speaker_tokens=SPEAKERS)
    m.save(tmp_path / "m")
    back = load_ranker(tmp_path / "m")
    assert back.packer.speaker_tokens == tuple(SPEAKERS)
    assert (
        back.packer.pack(["a", "b"], [["c"], ["d"]]).input_ids.tolist()
        == m.packer.pack(["a", "b"], [["c"], ["d"]]).input_ids.tolist()
    )


# --------------------------------------------------------------------------- in-batch candidates


def _dialogues(n: int = 8) -> list[DialogueExample]:
    return [
        DialogueExample(
            f"d{i}", [f"hello {i}", f"question number {i}?"], [f"answer {i}", f"wrong {i}", f"other {i}"], [1, 0, 0]
        )
        for i in range(n)
    ]


def _examples(n: int = 8):
    return examples_from_dialogues(_dialogues(n))[0]


class RecordingRanker(Ranker):
    """Scores = w * (number of shared words); records every (contexts, candidate lists) call."""

    kind = "recording"

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(1.0))
        self.calls = []

    def score(self, contexts, candidates):
        self.calls.append(([tuple(c) for c in contexts], [list(c) for c in candidates]))
        out = torch.tensor(
            [
                [float(len(set(" ".join(ctx).split()) & set(c.split()))) for c in cands]
                for ctx, cands in zip(contexts, candidates)
            ]
        )
        return self.w * out


def test_in_batch_candidates_are_the_batch_replies_in_a_seeded_order():
    rows = epoch_rows(_examples(6), epoch=0, seed=0, negatives=0)
    cfg = from_dict(
        TrainConfig, {"in_batch_negatives": True, "shuffle_pool": True, "data": {"negatives": 0}, "losses": {"ce": 1.0}}
    )

    def candidates(seed: int, step: int) -> list[list[str]]:
        cfg.seed = seed
        model = RecordingRanker()
        batch_backward(model, rows, cfg, 1.0, step=step)
        ((contexts, lists),) = model.calls
        assert contexts == [r.query for r in rows]
        return lists

    lists = candidates(0, 0)
    gold = [r.positive.text for r in rows]
    assert all(sorted(c) == sorted(gold) for c in lists)  # exactly the batch's replies, no own negatives
    assert all(c == lists[0] for c in lists)  # one order per batch
    assert lists[0] != gold  # not positives-first
    assert (
        candidates(0, 0) == lists and candidates(1, 0) != lists and candidates(0, 1) != lists
    )  # seeded by (seed, step)

    layout = shuffle_columns(pool_layout(rows), [gold.index(t) for t in lists[0]])
    for i, r in enumerate(rows):  # the label is the row's own reply
        assert (
            layout.positive_mask[i].sum() == 1
            and layout.docs[int(layout.positive_mask[i].nonzero())] == r.positive.text
        )


def test_shuffle_columns_moves_every_mask_with_its_column():
    rows = [
        Row("q1", "Q1", Candidate("a", "A", 2.0), (Candidate("n", "N", 1.0),), frozenset({"a", "b"})),
        Row("q2", "Q2", Candidate("b", "B", 3.0), (), frozenset({"b"})),
    ]
    lay = pool_layout(rows)
    out = shuffle_columns(lay, [2, 0, 1])
    assert out.docs == ["N", "A", "B"]
    for name in ("positive_mask", "valid_mask", "hard_mask"):
        assert getattr(out, name).tolist() == getattr(lay, name)[:, [2, 0, 1]].tolist()
    torch.testing.assert_close(out.teacher, lay.teacher[:, [2, 0, 1]], equal_nan=True)
    with pytest.raises(ValueError, match="permutation"):
        shuffle_columns(lay, [0, 0, 1])


def test_uni_scores_do_not_depend_on_the_pool_order():
    """Why the order is only a guard for the Uni-Encoder: positions restart per candidate and the
    arrow mask sees the candidates as a set, so a permuted pool gives permuted scores."""
    m = UniEncoder(lively_backbone(), max_context_length=16, max_candidate_length=8)
    cands = ["answer one", "a second reply", "three", "and four here"]
    with torch.no_grad():
        s = m.score(["a context"], [cands])[0]
        p = m.score(["a context"], [[cands[i] for i in (2, 0, 3, 1)]])[0]
    torch.testing.assert_close(p, s[[2, 0, 3, 1]], atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- MLM auxiliary loss


def test_maskable_tokens_are_real_non_structure_tokens():
    m = UniEncoder(tiny_backbone(hidden=16), max_context_length=16, max_candidate_length=8, speaker_tokens=SPEAKERS)
    packed = m.packer.pack([["hi there", "how are you"], ["yes"]], [["fine thanks", "no"], ["ok"]])
    ok = maskable_tokens(packed.input_ids, packed.segment_ids, m.packer.structure_ids)
    tok = m.tokenizer.convert_ids_to_tokens
    words = [[t for t, k in zip(tok(row.tolist()), keep.tolist()) if k] for row, keep in zip(packed.input_ids, ok)]
    assert words == [["hi", "there", "how", "are", "you", "fine", "thanks", "no"], ["yes", "ok"]]


def test_mlm_masks_only_real_tokens_and_the_loss_is_the_heads_cross_entropy():
    m = UniEncoder(tiny_backbone(hidden=16), max_context_length=16, max_candidate_length=8, speaker_tokens=SPEAKERS)
    m.add_mlm_head()
    contexts, cands = [["hi there", "how are you"], ["yes"]], [["fine thanks", "no"], ["ok"]]
    packed = m.packer.pack(contexts, cands)
    seen = {}
    hook = m.encoder.register_forward_hook(
        lambda mod, args, kw, out: seen.update(ids=kw["input_ids"], hidden=out.last_hidden_state), with_kwargs=True
    )
    with m.masked_lm(1.0, torch.Generator().manual_seed(3)) as mlm:  # prob 1: every maskable token is selected
        m.score(contexts, cands)
    hook.remove()
    maskable = maskable_tokens(packed.input_ids, packed.segment_ids, m.packer.structure_ids)
    assert mlm.masked == int(maskable.sum()) == 10
    changed = seen["ids"] != packed.input_ids
    assert not (changed & ~maskable).any()  # structure tokens and padding are never touched
    assert int((seen["ids"] == m.tokenizer.mask_token_id).sum()) > 0
    # the loss: cross-entropy of the head's logits at every selected position, targets the original ids
    logits = m.mlm_head(seen["hidden"][maskable])
    torch.testing.assert_close(mlm.loss(), torch.nn.functional.cross_entropy(logits, packed.input_ids[maskable]))


def test_mlm_pass_trains_on_the_masked_input_and_leaves_inference_alone():
    m = UniEncoder(lively_backbone(), max_context_length=16, max_candidate_length=8)
    ctx, cands = [["the cat sat on the mat", "and then"]], [["it slept all day long", "no idea"]]
    with torch.no_grad():
        before = m.score(ctx, cands)
        m.add_mlm_head()
        plain = m.score(ctx, cands)
        with m.masked_lm(0.5, torch.Generator().manual_seed(0)):
            masked = m.score(ctx, cands)
        after = m.score(ctx, cands)
    torch.testing.assert_close(plain, before)
    torch.testing.assert_close(after, before)
    assert not torch.allclose(masked, before)


def test_mlm_corrupts_only_the_main_encoders_input():
    """A poly-encoder with its own candidate encoder: only passes through the main (context)
    encoder, whose word embeddings the head decodes with, are masked."""
    m = PolyEncoder(
        tiny_backbone(hidden=16), n_codes=2, shared_encoder=False, max_context_length=16, max_candidate_length=8
    )
    m.add_mlm_head()
    with m.masked_lm(1.0, torch.Generator().manual_seed(0)) as mlm:
        m.score(["a b c"], [["d e", "f"]])
    assert mlm.masked == 3  # a, b, c


@pytest.mark.parametrize("cls", [UniEncoder, CrossEncoder, PolyEncoder])
def test_mlm_head_round_trips_through_the_model_folder(tmp_path, cls):
    m = cls(lively_backbone(), max_context_length=16, max_candidate_length=8)
    head = m.add_mlm_head(seed=5)
    with torch.no_grad():
        head.bias.normal_()
        head.norm.weight.normal_()
    m.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "unirank_model.json").read_text())["mlm_head"] == {"act": "gelu", "eps": 1e-12}
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "m" / "head.safetensors"))
    assert "mlm_head.dense.weight" in stored and "mlm_head.decoder_weight" not in stored  # the decoder is the embedding
    back = load_ranker(tmp_path / "m", device="cpu")
    assert back.mlm_head.decoder_weight is back.encoder.get_input_embeddings().weight
    for k, v in head.state_dict().items():
        torch.testing.assert_close(back.mlm_head.state_dict()[k], v, msg=k)
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            back.score(["a b", "c"], [["d", "e f"], ["g"]]), m.score(["a b", "c"], [["d", "e f"], ["g"]])
        )
    plain = cls(lively_backbone(), max_context_length=16, max_candidate_length=8)
    plain.save(tmp_path / "p")
    assert "mlm_head" not in json.loads((tmp_path / "p" / "unirank_model.json").read_text())
    assert load_ranker(tmp_path / "p").mlm_head is None


# --------------------------------------------------------------------------- the loop with each option


def _uni(**kw) -> UniEncoder:
    return UniEncoder(tiny_backbone(hidden=32), max_context_length=24, max_candidate_length=12, **kw)


def _cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = {
        "batch_size": 4,
        "epochs": 3,
        "lr": 1e-3,
        "dev": {"split": None},
        "log_every": 1,
        "out": str(tmp_path / "run"),
        "data": {"negatives": 2, "negative_choice": "first"},
        "warmup_ratio": 0.0,
        "losses": {"ce": 1.0},
        "in_batch_negatives": False,
        "batching": {"name": "random"},
    }
    for k, v in kw.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return from_dict(TrainConfig, base)


def _ce(model, examples, in_batch: bool = False) -> float:
    """Mean CE of every context over its own candidates, or (``in_batch``) over every context's
    gold reply - what the option trains on (eval mode, no masking)."""
    model.eval()
    gold = [e.positives[0].text for e in examples]
    with torch.no_grad():
        if in_batch:
            scores, labels = (
                model.score([e.query for e in examples], [gold] * len(examples)),
                torch.arange(len(examples)),
            )
        else:
            scores = model.score(
                [e.query for e in examples], [[g, *(n.text for n in e.negatives)] for g, e in zip(gold, examples)]
            )
            labels = torch.zeros(len(examples), dtype=torch.long)
    return float(torch.nn.functional.cross_entropy(scores, labels))


IN_BATCH = {"in_batch_negatives": True, "shuffle_pool": True, "data": {"negatives": 0}}
OPTIONS = {
    "in_batch": ({}, IN_BATCH),
    "mlm": ({}, {"mlm": {"weight": 1.0}}),
    "speakers": ({"speaker_tokens": SPEAKERS}, {}),
    "noam": ({}, {"schedule": "noam", "adam_betas": [0.9, 0.98], "warmup_steps": 2}),
    "recipe": (
        {"speaker_tokens": SPEAKERS},
        {**IN_BATCH, "mlm": {"weight": 1.0}, "schedule": "noam", "adam_betas": [0.9, 0.98], "warmup_steps": 2},
    ),
}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_uni_trains_with_each_option(tmp_path, option):
    settings, cfg_kw = OPTIONS[option]
    model, ex = _uni(**settings), _examples()
    in_batch = "shuffle_pool" in cfg_kw
    before = _ce(model, ex, in_batch)
    summary = train(_cfg(tmp_path, **cfg_kw, epochs=6), model=model, examples=ex, **QUIET)
    assert summary["steps"] == 12
    assert _ce(model, ex, in_batch) < before
    logged = [json.loads(x) for x in (Path(summary["out"]) / "metrics.jsonl").read_text().splitlines()]
    assert ("mlm" in logged[0]) == ("mlm" in cfg_kw)
    back = load_ranker(summary["export"]["model"])
    assert (back.mlm_head is not None) == ("mlm" in cfg_kw) and back.packer.speaker_tokens == (
        tuple(SPEAKERS) if settings else None
    )


@pytest.mark.parametrize("kind", ["cross", "poly"])
def test_cross_and_poly_train_with_in_batch_candidates_and_mlm(tmp_path, kind):
    from unirank.models.base import MODELS

    model = MODELS.get(kind)(lively_backbone(), max_context_length=24, max_candidate_length=12, speaker_tokens=SPEAKERS)
    ex = _examples()
    before = _ce(model, ex, in_batch=True)
    summary = train(_cfg(tmp_path, **IN_BATCH, mlm={"weight": 1.0}, epochs=6), model=model, examples=ex, **QUIET)
    assert _ce(model, ex, in_batch=True) < before
    logged = [json.loads(x) for x in (Path(summary["out"]) / "metrics.jsonl").read_text().splitlines()]
    assert all(r["mlm"] > 0 for r in logged if "loss" in r)


def test_recipe_resumes_to_the_same_weights(tmp_path):
    """MLM masks and pool orders come from per-batch seeds, so a resumed run matches."""
    settings, kw = OPTIONS["recipe"]
    full = train(_cfg(tmp_path / "a", **kw), model=_uni(**settings), examples=_examples(), **QUIET)
    cfg_b = _cfg(tmp_path / "b", **kw, stop_after=3)
    train(cfg_b, model=_uni(**settings), examples=_examples(), **QUIET)
    cfg_b.stop_after = None
    done = train(cfg_b, resume=True, model=_uni(**settings), examples=_examples(), **QUIET)
    assert done["steps"] == full["steps"] == 6
    from safetensors.torch import load_file

    (ca,), (cb,) = (
        (tmp_path / r / "run" / "checkpoints").glob("step-0000006*") for r in "ab"
    )  # "-end" at an epoch's end
    wa, wb = load_file(str(ca / "model.safetensors")), load_file(str(cb / "model.safetensors"))
    assert wa.keys() == wb.keys() and any(k.startswith("mlm_head.") for k in wa)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_recipe_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="shuffle_pool .* needs in_batch_negatives"):
        _cfg(tmp_path, shuffle_pool=True).validate()
    for bad in ([0.9], [0.9, 1.0], "0.9,0.98"):
        with pytest.raises(ConfigError, match="adam_betas"):
            _cfg(tmp_path, adam_betas=bad).validate()
    with pytest.raises(ConfigError, match="mlm.prob"):
        _cfg(tmp_path, mlm={"weight": 1.0, "prob": 0.0}).validate()
    with pytest.raises(ConfigError, match="mlm.weight"):
        _cfg(tmp_path, mlm={"weight": -1.0}).validate()
    with pytest.raises(ConfigError, match="mlm.head_warmup_steps .* needs mlm.weight > 0"):
        _cfg(tmp_path, mlm={"head_warmup_steps": 5}).validate()
    with pytest.raises(ConfigError, match="mlm.head_warmup_lr must be > 0"):
        _cfg(tmp_path, mlm={"weight": 1.0, "head_warmup_steps": 5, "head_warmup_lr": 0.0}).validate()
    from unirank.models.bi import BiEncoder

    with pytest.raises(ConfigError, match="mlm.weight: the MLM auxiliary loss needs a packed-input ranker"):
        train(
            _cfg(tmp_path, mlm={"weight": 1.0}),
            model=BiEncoder(tiny_backbone(hidden=16), max_length=16),
            examples=_examples(),
            **QUIET,
        )


def _masked_lm_folder(folder: Path, architecture: str = "mlm") -> Path:
    """A tiny BERT checkpoint written by transformers: ``mlm`` a BertForMaskedLM (with its
    pre-trained-style head, weights drawn at random here), ``plain`` a BertModel (no head)."""
    from transformers import BertForMaskedLM, BertModel

    bb = tiny_backbone(hidden=16)
    torch.manual_seed(1)
    cls = BertForMaskedLM if architecture == "mlm" else BertModel
    model = cls(bb.model.config)
    with torch.no_grad():  # a head that is not BERT's init, so copying it is visible
        for p in model.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    model.save_pretrained(str(folder))
    bb.tokenizer.save_pretrained(str(folder))
    return folder


def test_mlm_head_comes_from_a_masked_lm_checkpoint(tmp_path):
    from transformers import BertForMaskedLM

    src = _masked_lm_folder(tmp_path / "bert-mlm")
    m = UniEncoder.from_pretrained(src, max_context_length=16, max_candidate_length=8)
    head = m.add_mlm_head(seed=3)
    assert m.mlm_head_origin == "checkpoint"
    assert head.decoder_weight is m.encoder.get_input_embeddings().weight  # tied to *this* model's embeddings
    ref = BertForMaskedLM.from_pretrained(str(src)).eval()
    hidden = torch.randn(2, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(head(hidden), ref.cls(hidden))  # the checkpoint's logits, not a new head's
    # saved and loaded, the trained head comes back from head.safetensors, not from the source again
    with torch.no_grad():
        head.bias.add_(1.0)
    m.save(tmp_path / "saved")
    back = load_ranker(tmp_path / "saved")
    torch.testing.assert_close(back.mlm_head.bias, head.bias)


def test_mlm_head_is_new_without_a_usable_checkpoint_head(tmp_path):
    plain = UniEncoder.from_pretrained(_masked_lm_folder(tmp_path / "plain", "plain"), max_context_length=16)
    plain.add_mlm_head()
    assert plain.mlm_head_origin == "new"  # a BertModel folder (as all-MiniLM-L6-v2) has no head
    changed = UniEncoder.from_pretrained(_masked_lm_folder(tmp_path / "mlm"), max_context_length=16)
    with torch.no_grad():
        changed.encoder.get_input_embeddings().weight.add_(
            0.5
        )  # fine-tuned since: the head decodes for other embeddings
    changed.add_mlm_head()
    assert changed.mlm_head_origin == "new"
    tiny = _uni()
    tiny.add_mlm_head()  # a made-up source name: no config to read
    assert tiny.mlm_head_origin == "new"


def test_a_config_naming_a_masked_lm_over_headless_weights_gives_a_new_head(tmp_path):
    folder = _masked_lm_folder(tmp_path / "headless", "plain")
    conf = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**conf, "architectures": ["BertForMaskedLM"]}))
    m = UniEncoder.from_pretrained(folder, max_context_length=16)
    m.add_mlm_head()
    assert m.mlm_head_origin == "new"  # transformers would have made up the head; it is not "the checkpoint's"


def test_a_checkpoint_head_is_refused_when_the_encoder_changed_but_not_its_embeddings(tmp_path):
    m = UniEncoder.from_pretrained(_masked_lm_folder(tmp_path / "mlm"), max_context_length=16)
    with torch.no_grad():  # e.g. trained with the embeddings frozen
        m.encoder.encoder.layer[0].attention.self.query.weight.add_(0.5)
    m.add_mlm_head()
    assert m.mlm_head_origin == "new"


@pytest.mark.parametrize("kind", ["mlm", "plain"])
def test_adding_an_mlm_head_leaves_the_global_random_state_alone(tmp_path, kind):
    m = UniEncoder.from_pretrained(_masked_lm_folder(tmp_path / kind, kind), max_context_length=16)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    m.add_mlm_head()
    assert m.mlm_head_origin == ("checkpoint" if kind == "mlm" else "new")
    assert torch.equal(torch.get_rng_state(), before)  # transformers' init draws happen on a forked generator


def test_training_notes_a_new_mlm_head_only(tmp_path):
    lines: list[str] = []
    train(
        _cfg(tmp_path / "a", mlm={"weight": 1.0}, epochs=1),
        model=_uni(),
        examples=_examples(),
        progress=False,
        log=lines.append,
    )
    assert sum("has no usable pre-trained MLM head" in x and "ln(vocab) = 10.3" in x for x in lines) == 1
    lines.clear()
    m = UniEncoder.from_pretrained(_masked_lm_folder(tmp_path / "mlm"), max_context_length=24, max_candidate_length=12)
    train(
        _cfg(tmp_path / "b", mlm={"weight": 1.0}, epochs=1),
        model=m,
        examples=_examples(),
        progress=False,
        log=lines.append,
    )
    assert m.mlm_head_origin == "checkpoint" and not any("MLM head" in x for x in lines)


def _rows(n: int = 4) -> list[Row]:
    return epoch_rows(_examples(n), 0, 0, 2, "first")


def test_head_warmup_trains_only_the_heads_transform_and_bias():
    m = _uni()
    m.add_mlm_head(seed=1)
    cfg = _cfg(Path("unused"), **IN_BATCH, mlm={"weight": 1.0, "head_warmup_lr": 1e-2})
    before = {k: v.clone() for k, v in m.state_dict().items()}
    losses = warm_mlm_head(m, [_rows()] * 15, cfg)
    assert len(losses) == 15 and sum(losses[-3:]) < sum(losses[:3])  # the same batch, so the head fits it
    after = m.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved == {
        "mlm_head.dense.weight",
        "mlm_head.dense.bias",
        "mlm_head.norm.weight",
        "mlm_head.norm.bias",
        "mlm_head.bias",
    }  # not the encoder, not the tied decoder (= word embeddings), not the ranking head
    assert all(p.requires_grad for p in m.parameters())  # unfrozen again
    again = _uni()
    again.add_mlm_head(seed=1)
    assert warm_mlm_head(again, [_rows()] * 15, cfg) == losses  # seeded masks: the same steps


def test_training_warms_a_new_head_first_and_resumes_to_the_same_weights(tmp_path):
    settings, kw = OPTIONS["recipe"]
    kw = {**kw, "mlm": {"weight": 1.0, "head_warmup_steps": 4}}
    lines: list[str] = []
    full = train(
        _cfg(tmp_path / "a", **kw), model=_uni(**settings), examples=_examples(), progress=False, log=lines.append
    )
    assert sum(x.startswith("mlm: fitted the new MLM head alone for 4 steps") for x in lines) == 1
    plain = train(_cfg(tmp_path / "p", **OPTIONS["recipe"][1]), model=_uni(**settings), examples=_examples(), **QUIET)

    def first_mlm(summary):
        rows = [json.loads(x) for x in (Path(summary["out"]) / "metrics.jsonl").read_text().splitlines()]
        return next(r["mlm"] for r in rows if "mlm" in r)

    assert first_mlm(full) < first_mlm(plain)  # the warmed head starts lower
    cfg_b = _cfg(tmp_path / "b", **kw, stop_after=3)
    train(cfg_b, model=_uni(**settings), examples=_examples(), **QUIET)
    cfg_b.stop_after = None
    lines.clear()
    done = train(cfg_b, resume=True, model=_uni(**settings), examples=_examples(), progress=False, log=lines.append)
    assert done["steps"] == full["steps"] and not any("fitted the new MLM head" in x for x in lines)
    from safetensors.torch import load_file

    (ca,), (cb,) = ((tmp_path / r / "run" / "checkpoints").glob("step-0000006*") for r in "ab")
    wa, wb = load_file(str(ca / "model.safetensors")), load_file(str(cb / "model.safetensors"))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_head_warmup_does_not_change_the_random_draws_of_the_run_after_it(tmp_path):
    """A warm-up whose updates round to nothing (lr 1e-30) ends in the weights of a run without
    one, bit for bit: its dropout draws came from a forked generator (dropout is on here)."""
    settings, kw = OPTIONS["recipe"]
    runs = {}
    for name, mlm in {
        "none": {"weight": 1.0},
        "warm": {"weight": 1.0, "head_warmup_steps": 3, "head_warmup_lr": 1e-30},
    }.items():
        runs[name] = train(
            _cfg(tmp_path / name, **{**kw, "mlm": mlm}, epochs=1), model=_uni(**settings), examples=_examples(), **QUIET
        )
    from safetensors.torch import load_file

    a, b = (
        load_file(str(next((Path(r["out"]) / "checkpoints").glob("step-*")) / "model.safetensors"))
        for r in runs.values()
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_head_warmup_with_an_empty_first_epoch_is_a_note(tmp_path):
    lines: list[str] = []
    cfg = _cfg(
        tmp_path,
        mlm={"weight": 1.0, "head_warmup_steps": 3},
        epochs=1,
        batch_size=16,
        batching={"name": "random", "drop_last": True},
    )
    done = train(cfg, model=_uni(), examples=_examples(), progress=False, log=lines.append)
    assert done["steps"] == 0 and any("the first epoch has no batches" in x for x in lines)


def test_head_warmup_leaves_a_checkpoint_head_alone(tmp_path):
    m = UniEncoder.from_pretrained(_masked_lm_folder(tmp_path / "mlm"), max_context_length=24, max_candidate_length=12)
    lines: list[str] = []
    cfg = _cfg(tmp_path / "r", mlm={"weight": 1.0, "head_warmup_steps": 3}, epochs=1)
    train(cfg, model=m, examples=_examples(), progress=False, log=lines.append)
    assert any("the MLM head is not a new one" in x for x in lines)
    assert not any("fitted the new MLM head" in x for x in lines)
