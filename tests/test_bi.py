import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unirank.errors import ConfigError
from unirank.models.backbone import packaged_model_dir, tiny_backbone
from unirank.models.base import MODELS
from unirank.models.bi import UNIRANK_CONFIG, BiEncoder
from unirank.types import Document

TEXTS = [
    "a",
    "The quick brown fox jumps over the lazy dog.",
    "",
    "Short one.",
    "Dense retrieval encodes queries and documents separately and compares their vectors " * 3,
    "Résumé of naïve café owners, in ünïcödé!",
    "What is the capital of France?",
    "word " * 100,  # longer than the tiny model's max_length: truncated
    "Paris.",
    "Bi-encoders are fast at query time because document vectors are computed once.",
]


@pytest.fixture(scope="module")
def tiny():
    return BiEncoder(tiny_backbone(hidden=32, seed=0), max_length=48)


def reference_vector(model: BiEncoder, text: str, pooling: str, normalize: bool) -> np.ndarray:
    """One text through the raw transformers model, no padding, pooled by hand."""
    ids = model.tokenizer(text, truncation=True, max_length=model.max_length, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = model.model(input_ids=ids.to(model.device)).last_hidden_state[0]  # (L, H)
    v = hidden.mean(0) if pooling == "mean" else hidden[0]
    return (F.normalize(v, dim=-1) if normalize else v).cpu().numpy()


# --------------------------------------------------------------------------- encode


def test_registered_as_bi():
    assert MODELS.get("bi") is BiEncoder


def test_encode_matches_unpadded_hand_pooling(tiny):
    out = tiny.encode(TEXTS, batch_size=4)
    assert out.shape == (len(TEXTS), 32) and out.dtype == np.float32
    for i, t in enumerate(TEXTS):
        np.testing.assert_allclose(out[i], reference_vector(tiny, t, "mean", True), atol=1e-5)


def test_encode_order_is_input_order(tiny):
    perm = list(range(len(TEXTS)))
    random.Random(3).shuffle(perm)
    base = tiny.encode(TEXTS, batch_size=3)
    shuffled = tiny.encode([TEXTS[i] for i in perm], batch_size=3)
    np.testing.assert_allclose(shuffled, base[perm], atol=1e-6)
    assert not np.allclose(base[0], base[1])  # rows differ, so a mix-up would be caught


@pytest.mark.parametrize("batch_size", [1, 2, 7, 64])
def test_batch_size_does_not_change_results(tiny, batch_size):
    np.testing.assert_allclose(tiny.encode(TEXTS, batch_size=batch_size), tiny.encode(TEXTS, batch_size=5), atol=1e-5)


def test_encode_equals_differentiable_embed(tiny):
    np.testing.assert_allclose(tiny.encode(TEXTS), tiny.embed(TEXTS).detach().cpu().numpy(), atol=1e-5)


def test_normalized_rows_have_unit_norm_and_unnormalized_do_not():
    bb = tiny_backbone(hidden=32, seed=0)
    norm = BiEncoder(bb, max_length=48).encode(TEXTS)
    raw = BiEncoder(bb, max_length=48, normalize=False).encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(norm, axis=1), 1.0, atol=1e-5)
    assert np.abs(np.linalg.norm(raw, axis=1) - 1.0).max() > 0.1
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), norm, atol=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
def test_cls_pooling_takes_first_token(normalize):
    m = BiEncoder(tiny_backbone(hidden=32, seed=1), pooling="cls", normalize=normalize, max_length=48)
    out = m.encode(TEXTS, batch_size=3)
    for i, t in enumerate(TEXTS):
        np.testing.assert_allclose(out[i], reference_vector(m, t, "cls", normalize), atol=1e-5)


def test_prefetching_tokenizer_thread_yields_the_same_chunks(tiny):
    order = np.arange(len(TEXTS))[::-1]
    plain = list(tiny._tokenized_chunks(TEXTS, order, 3, 48, prefetch=False))
    threaded = list(tiny._tokenized_chunks(TEXTS, order, 3, 48, prefetch=True))
    assert [len(idx) for idx, _ in plain] == [3, 3, 3, 1]
    assert [(i.tolist(), ids) for i, ids in plain] == [(i.tolist(), ids) for i, ids in threaded]
    assert plain[0][1][0] == tiny.tokenizer(TEXTS[-1])["input_ids"]


def test_max_length_truncates(tiny):
    long_text = " ".join(f"w{i}" for i in range(200))
    ids = tiny.tokenizer(long_text)["input_ids"]
    assert len(ids) > 48
    cut = ids[:7] + [tiny.tokenizer.sep_token_id]  # what truncation to 8 keeps
    with torch.no_grad():
        hidden = tiny.model(input_ids=torch.tensor([cut], device=tiny.device)).last_hidden_state[0]
    ref = F.normalize(hidden.mean(0), dim=-1).cpu().numpy()
    np.testing.assert_allclose(tiny.encode([long_text], max_length=8)[0], ref, atol=1e-5)
    assert not np.allclose(tiny.encode([long_text])[0], ref, atol=1e-3)


def test_empty_input_and_bad_arguments(tiny):
    assert tiny.encode([]).shape == (0, 32)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tiny.encode(["ok", 3])
    with pytest.raises(ConfigError, match="fp16"):
        tiny.encode(["x"], dtype="fp16", device="cpu")
    with pytest.raises(ConfigError, match="valid"):
        tiny.encode(["x"], dtype="int8")
    with pytest.raises(ConfigError, match="pooling"):
        BiEncoder(tiny_backbone(hidden=16), pooling="max")
    with pytest.raises(ConfigError, match="similarity"):
        BiEncoder(tiny_backbone(hidden=16), similarity="l2")
    with pytest.raises(ConfigError, match="max_length"):
        BiEncoder(tiny_backbone(hidden=16), max_length=1000)


def test_bf16_autocast_on_cpu_is_close_and_float32(tiny):
    out = tiny.encode(TEXTS[:4], dtype="bf16", device="cpu")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, tiny.encode(TEXTS[:4]), atol=0.05)


def test_encode_restores_training_mode():
    m = BiEncoder(tiny_backbone(hidden=16), max_length=32).train()
    m.encode(["x", "y"])
    assert m.training and m.model.training


def test_prefixes_and_documents():
    m = BiEncoder(tiny_backbone(hidden=16), max_length=32, query_prefix="query: ", doc_prefix="passage: ")
    np.testing.assert_allclose(m.encode_queries(["what"]), m.encode(["query: what"]), atol=1e-6)
    doc = Document(id="d1", title="Title", text="Body text.")
    np.testing.assert_allclose(
        m.encode_docs([doc, "plain"]), m.encode(["passage: Title Body text.", "passage: plain"]), atol=1e-6
    )
    # dialogue contexts: turns joined with the tokenizer's [SEP]
    assert m.context_text(["hi", "hello", "bye"]) == "hi [SEP] hello [SEP] bye"
    np.testing.assert_allclose(m.encode_queries([["hi", "yo"]]), m.encode(["query: hi [SEP] yo"]), atol=1e-6)


# --------------------------------------------------------------------------- score / training


def test_score_shape_values_and_inf_padding():
    m = BiEncoder(tiny_backbone(hidden=32, seed=2), max_length=48, similarity="dot", normalize=False, doc_prefix="d: ")
    contexts = ["first query", ["turn one", "turn two"], "third"]
    candidates = [["a", "bb", "ccc"], ["only one"], []]
    with torch.no_grad():
        s = m.score(contexts, candidates)
    assert s.shape == (3, 3)
    assert torch.isinf(s[1, 1:]).all() and (s[1, 1:] < 0).all()
    assert torch.isinf(s[2]).all()
    assert torch.isfinite(s[0]).all() and torch.isfinite(s[1, 0])
    q = m.encode(["first query", "turn one [SEP] turn two"])
    d = m.encode(["d: a", "d: bb", "d: ccc", "d: only one"])
    np.testing.assert_allclose(s[0].cpu().numpy(), q[0] @ d[:3].T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(s[1, 0]), float(q[1] @ d[3]), rtol=1e-4, atol=1e-4)
    # rank() goes through score(), chunk by chunk
    np.testing.assert_allclose(m.rank("first query", ["a", "bb", "ccc"], chunk_size=2), s[0].cpu().numpy(), atol=1e-4)


def test_score_cosine_is_bounded_and_no_candidates_gives_empty():
    m = BiEncoder(tiny_backbone(hidden=16), max_length=32)
    with torch.no_grad():
        s = m.score(["q"], [["x", "y", "z"]])
        assert (s.abs() <= 1 + 1e-5).all()
        assert m.score(["q", "r"], [[], []]).shape == (2, 0)
    with pytest.raises(ValueError, match="2 contexts but 1"):
        m.score(["q", "r"], [["x"]])


def test_gradients_flow_through_embed_and_score():
    m = BiEncoder(tiny_backbone(hidden=16), max_length=32).train()
    emb = m.embed(["a query", "a document"])
    assert emb.requires_grad
    emb[0].dot(emb[1]).backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    m.zero_grad()
    s = m.score(["q1", "q2"], [["pos", "neg"], ["pos2"]])
    loss = -torch.log_softmax(s, dim=-1)[:, 0].mean()  # -inf slots get probability 0, no nan
    assert torch.isfinite(loss)
    loss.backward()
    assert m.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------- save / load


def test_save_and_from_pretrained_round_trip(tmp_path):
    m = BiEncoder(
        tiny_backbone(hidden=32, seed=4),
        pooling="cls",
        normalize=False,
        max_length=40,
        similarity="dot",
        query_prefix="q: ",
        doc_prefix="p: ",
    )
    m.save(tmp_path / "model")
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
        "config_sentence_transformers.json",
        UNIRANK_CONFIG,
    ]:
        assert (tmp_path / "model" / f).is_file(), f
    assert not (tmp_path / "model" / "2_Normalize").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temp folder left behind
    cfg = json.loads((tmp_path / "model" / UNIRANK_CONFIG).read_text())
    assert cfg["kind"] == "bi" and cfg["backbone"]["fingerprint"] == m.backbone.fingerprint()

    loaded = BiEncoder.from_pretrained(tmp_path / "model")
    assert loaded.settings == m.settings
    # every saved weight comes back (transformers adds a fresh, unused BERT pooler to a model
    # saved without one, so the loaded fingerprint itself differs)
    theirs = loaded.model.state_dict()
    for name, t in m.model.state_dict().items():
        assert torch.equal(theirs[name], t), name
    np.testing.assert_array_equal(loaded.encode(TEXTS), m.encode(TEXTS))
    # explicit keyword arguments override the saved settings
    assert BiEncoder.from_pretrained(tmp_path / "model", max_length=16).max_length == 16


def test_save_replaces_previous_save_but_not_other_folders(tmp_path):
    a = BiEncoder(tiny_backbone(hidden=16, seed=0), max_length=32)
    b = BiEncoder(tiny_backbone(hidden=16, seed=1), max_length=32)
    a.save(tmp_path / "m")
    b.save(tmp_path / "m")
    np.testing.assert_array_equal(BiEncoder.from_pretrained(tmp_path / "m").encode(["x"]), b.encode(["x"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    with pytest.raises(ConfigError, match="refusing"):  # one line from the CLI, not a traceback
        a.save(other)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        a.save(tmp_path / "f")
    assert (other / "keep.txt").read_text() == "precious"


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    m = BiEncoder(tiny_backbone(hidden=16), max_length=32)

    def broken(folder):
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(m, "_write_folder", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        m.save(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_from_pretrained_refuses_other_kind_and_unsupported_pipelines(tmp_path):
    m = BiEncoder(tiny_backbone(hidden=16), max_length=32)
    m.save(tmp_path / "m")
    cfg_path = tmp_path / "m" / UNIRANK_CONFIG
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "kind": "cross"}))
    with pytest.raises(ConfigError, match="kind is 'cross'"):
        BiEncoder.from_pretrained(tmp_path / "m")
    cfg_path.unlink()
    modules = json.loads((tmp_path / "m" / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (tmp_path / "m" / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match="Dense"):
        BiEncoder.from_pretrained(tmp_path / "m")


# --------------------------------------------------------------------------- sentence-transformers agreement


@pytest.fixture(scope="module")
def st():
    return pytest.importorskip("sentence_transformers")


@pytest.mark.parametrize(
    "kw",
    [
        dict(pooling="mean", normalize=True),
        dict(pooling="cls", normalize=False, similarity="dot"),
    ],
)
def test_saved_folder_loads_in_sentence_transformers(tmp_path, st, kw):
    m = BiEncoder(tiny_backbone(hidden=32, seed=5), max_length=40, query_prefix="query: ", doc_prefix="doc: ", **kw)
    m.save(tmp_path / "m")
    ref = st.SentenceTransformer(str(tmp_path / "m"), device="cpu")
    assert ref.max_seq_length == 40
    np.testing.assert_allclose(ref.encode(TEXTS, batch_size=4), m.encode(TEXTS, batch_size=3), atol=1e-5)
    np.testing.assert_allclose(ref.encode_query(TEXTS[:3]), m.encode_queries(TEXTS[:3]), atol=1e-5)
    np.testing.assert_allclose(ref.encode_document(TEXTS[:3]), m.encode_docs(TEXTS[:3]), atol=1e-5)
    assert ref.similarity_fn_name == m.similarity


def test_similarities_agree_with_sentence_transformers_util(st):
    from unirank.scoring import cosine, dot

    g = torch.Generator().manual_seed(0)
    q, d = torch.randn(4, 8, generator=g), torch.randn(6, 8, generator=g)
    assert torch.allclose(cosine(q, d), st.util.cos_sim(q, d), atol=1e-6)
    assert torch.allclose(dot(q, d), st.util.dot_score(q, d), atol=1e-5)


MINILM_SENTENCES = [
    "This framework generates embeddings for each input sentence",
    "Sentences are passed as a list of string.",
    "The quick brown fox jumps over the lazy dog.",
    "ok",
    "A considerably longer sentence about dense retrieval, bi-encoders, mean pooling and padding, "
    "which makes the batch ragged so that the attention mask really matters.",
    "antidisestablishmentarianism " * 120,  # > 256 word pieces: truncation matters
]


def test_reproduces_all_minilm_l6_v2(st):
    ours = BiEncoder.from_pretrained()
    assert ours.settings == {
        "pooling": "mean",
        "normalize": True,
        "max_length": 256,
        "similarity": "cosine",
        "query_prefix": "",
        "doc_prefix": "",
    }
    ref = st.SentenceTransformer(str(packaged_model_dir()), device="cpu")
    expected = ref.encode(MINILM_SENTENCES, batch_size=32)
    got = ours.encode(MINILM_SENTENCES, batch_size=32)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(ours.encode(MINILM_SENTENCES, batch_size=2), expected, atol=1e-5)
