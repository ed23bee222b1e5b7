"""Batch samplers and training rows: coverage, no duplicates, one cluster per batch, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from unirank.errors import ConfigError
from unirank.training.batching import BATCH_SAMPLERS, TASBalancedSampler, build_batch_sampler, local_part
from unirank.training.data import Row, epoch_rows
from unirank.types import Candidate, TrainExample


def _rows(n: int, n_docs: int, seed: int, negatives: int = 1) -> list[Row]:
    """Rows whose positives / negatives / queries collide often (few distinct texts)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        q = f"query {rng.integers(n // 2)}"  # repeated query texts
        pos = Candidate(f"d{rng.integers(n_docs)}", "")
        pos = Candidate(pos.id, f"text of {pos.id}")
        negs = tuple(Candidate(f"d{j}", f"text of d{j}") for j in rng.integers(n_docs, size=negatives).tolist())
        rows.append(Row(f"q{i}", q, pos, negs, frozenset({pos.id})))
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_no_duplicates_never_repeats_a_text_and_keeps_every_row(seed):
    rows = _rows(60, n_docs=25, seed=seed)
    batches = BATCH_SAMPLERS.get("no_duplicates")(batch_size=8, seed=seed).batches(rows, epoch=seed)
    for b in batches:
        texts = [t for i in b for t in set(rows[i].texts)]
        assert len(texts) == len(set(texts)), f"duplicate text in batch {b}"
        assert 1 <= len(b) <= 8
    assert sorted(i for b in batches for i in b) == list(range(len(rows)))


def test_no_duplicates_fills_batches_when_texts_are_distinct():
    rows = [Row(f"q{i}", f"query {i}", Candidate(f"d{i}", f"doc {i}"), (), frozenset({f"d{i}"})) for i in range(10)]
    batches = BATCH_SAMPLERS.get("no_duplicates")(batch_size=4, seed=0).batches(rows, 0)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [
        len(b) for b in BATCH_SAMPLERS.get("no_duplicates")(batch_size=4, seed=0, drop_last=True).batches(rows, 0)
    ] == [4, 4]


def test_no_duplicates_separates_rows_sharing_a_positive():
    shared = Candidate("d", "the same abstract")
    rows = [Row(f"q{i}", f"query {i}", shared, (), frozenset({"d"})) for i in range(3)]
    batches = BATCH_SAMPLERS.get("no_duplicates")(batch_size=3, seed=0).batches(rows, 0)
    assert sorted(len(b) for b in batches) == [1, 1, 1]


def test_random_sampler_is_a_seeded_permutation():
    s = BATCH_SAMPLERS.get("random")(batch_size=3, seed=7)
    rows = [None] * 10
    a, b, c = s.batches(rows, 0), s.batches(rows, 0), s.batches(rows, 1)
    assert a == b and a != c
    assert sorted(i for x in a for i in x) == list(range(10))
    assert [len(x) for x in a] == [3, 3, 3, 1]


def test_tas_balanced_batches_come_from_one_cluster():
    rng = np.random.default_rng(0)
    centers = np.eye(3, 8) * 10
    rows, vectors, truth = [], {}, {}
    for i in range(45):
        c = i % 3
        q = f"query {i}"
        vectors[q] = (centers[c] + rng.normal(scale=0.1, size=8)).astype(np.float32)
        truth[q] = c
        rows.append(Row(f"q{i}", q, Candidate(f"d{i}", f"doc {i}"), (), frozenset({f"d{i}"})))
    s = TASBalancedSampler(batch_size=4, seed=1, clusters=3)
    s.fit_vectors(rows, vectors)
    # k-means recovers the three blobs (labels are a renaming of the truth)
    mapping = {}
    for r, label in zip(rows, s.labels):
        assert mapping.setdefault(label, truth[r.query]) == truth[r.query]
    batches = s.batches(rows, epoch=0)
    for b in batches:
        assert len({truth[rows[i].query] for i in b}) == 1
    assert sorted(i for b in batches for i in b) == list(range(45))
    assert s.batches(rows, 0) == batches and s.batches(rows, 1) != batches
    # the fitted state round-trips through JSON-able state_dict
    s2 = TASBalancedSampler(batch_size=4, seed=1)
    s2.load_state_dict(s.state_dict())
    assert s2.batches(rows, 0) == batches


def test_tas_balanced_fit_uses_the_encoder():
    rows = [
        Row(f"q{i}", f"{'cat' if i < 4 else 'car'} {i}", Candidate(f"d{i}", f"d{i}"), (), frozenset()) for i in range(8)
    ]
    s = TASBalancedSampler(batch_size=4, seed=0, clusters=2)
    s.fit(rows, lambda texts: np.array([[1.0, 0.0] if t.startswith("cat") else [0.0, 1.0] for t in texts]))
    assert len(set(s.labels[:4])) == 1 and len(set(s.labels[4:])) == 1 and s.labels[0] != s.labels[4]
    with pytest.raises(RuntimeError, match="fit"):
        TASBalancedSampler(batch_size=2).batches(rows, 0)


def test_build_batch_sampler_errors_name_the_key():
    with pytest.raises(
        ConfigError, match="batching.name: unknown batch sampler 'nope'; valid: no_duplicates, random, tas_balanced"
    ):
        build_batch_sampler("nope", 2, 0)
    with pytest.raises(ConfigError, match="batching.params"):
        build_batch_sampler("random", 2, 0, params={"clusters": 3})


def test_local_part_splits_a_global_batch_exactly():
    batch = list(range(11))
    for world in (1, 2, 3, 4):
        parts = [local_part(batch, r, world) for r in range(world)]
        assert [i for p in parts for i in p] == batch
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_epoch_rows_draws_are_per_row_and_seeded():
    negs = [Candidate(f"n{j}", f"neg {j}") for j in range(10)]
    a = TrainExample("qa", "A", [Candidate("p1", "P1"), Candidate("p2", "P2")], negs)
    b = TrainExample("qb", "B", [Candidate("p3", "P3")], negs[:2])
    rows = epoch_rows([a, b], epoch=0, seed=3, negatives=3)
    assert [(r.query_id, r.positive.id, len(r.negatives)) for r in rows] == [
        ("qa", "p1", 3),
        ("qa", "p2", 3),
        ("qb", "p3", 2),
    ]
    assert rows[0].positive_ids == {"p1", "p2"}
    # a row's draw does not depend on the other examples
    alone = epoch_rows([a], epoch=0, seed=3, negatives=3)
    assert alone[0].negatives == rows[0].negatives
    # draws change with the epoch and keep mined order
    draws = {tuple(n.id for n in epoch_rows([a], epoch=e, seed=3, negatives=3)[0].negatives) for e in range(6)}
    assert len(draws) > 1
    for d in draws:
        ids = [int(n[1:]) for n in d]
        assert ids == sorted(ids) and len(set(ids)) == 3
    assert epoch_rows([a], 0, 3, negatives=2, choice="first")[0].negatives == tuple(negs[:2])
