"""Data-parallel training (CPU, gloo, 2 processes) equals one process over the same global batch.

One ``torch.multiprocessing.spawn`` of two ranks runs every distributed scenario (module
fixture); the single-process references run in the test process. Dropout is off in the
equality scenarios (the two runs draw different dropout masks) and on in the resume one.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch

from unirank.config import from_dict
from unirank.train import TrainConfig, train
from unirank.training.distributed import Dist, DistributedBatchSampler, all_gather_with_grad
from unirank.types import Candidate, TrainExample

WORLD = 2
LOSSES = {"infonce": {"infonce": 1.0}, "mw": {"mw": {"weight": 1.0, "pairing": "global", "scale": 5.0}}}


def _examples() -> list[TrainExample]:
    out = []
    for i in range(8):
        negs = [
            Candidate(f"n{i}-{j}", f"unrelated text {i} number {j}") for j in range(i % 3)
        ]  # 0-2 negatives: uneven ranks
        pos = [Candidate(f"d{i}", f"answer about topic {i}")]
        if i == 5:
            pos.append(Candidate("d4", "answer about topic 4"))  # d4 is also relevant to q5: masked, not a negative
        out.append(TrainExample(f"q{i}", f"question on topic {i}", pos, negs))
    return out


def _model(dropout: bool):
    from unirank.models.backbone import tiny_backbone
    from unirank.models.bi import BiEncoder

    m = BiEncoder(tiny_backbone(hidden=16, seed=0), max_length=16)
    if not dropout:
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
        m.backbone.model.config.attention_probs_dropout_prob = 0.0
        m.backbone.model.config.hidden_dropout_prob = 0.0
    return m


def _cfg(out: Path, losses: dict, **kw) -> TrainConfig:
    base = {
        "batch_size": 4,
        "epochs": 2,
        "lr": 1e-3,
        "warmup_ratio": 0.0,
        "dev": {"split": None},
        "log_every": 1,
        "export": "last",
        "batching": {"name": "random"},
        "data": {"negatives": 1},
        "losses": losses,
        "out": str(out),
        "threads": 1,
    }
    base.update(kw)
    return from_dict(TrainConfig, base)


def _run(
    out: Path, losses: dict, dist: Dist | None, dropout: bool = False, resume: bool = False, examples=None, **kw
) -> dict:
    return train(
        _cfg(out, losses, **kw),
        model=_model(dropout),
        examples=examples or _examples(),
        progress=False,
        log=lambda m: None,
        dist=dist,
        resume=resume,
    )


def _examples_all_negatives() -> list[TrainExample]:
    """Every row has a negative, so every row counts in its rank's InfoNCE mean."""
    return [
        TrainExample(e.query_id, e.query, e.positives, e.negatives or [Candidate(f"x{i}", f"other words {i}")])
        for i, e in enumerate(_examples())
    ]


def _beir(root: Path) -> Path:
    from .conftest import write_beir

    docs = {f"d{i}": (f"T{i}", f"answer about topic {i} " + "filler " * (i % 3)) for i in range(12)}
    queries = {f"q{i}": f"question on topic {i}" for i in range(12)}
    return write_beir(root / "beir", docs, queries, {f"q{i}": {f"d{i}": 1} for i in range(9)}, split="train")


def _run_refresh(root: Path, out: Path, dist: Dist | None) -> dict:
    """ANCE refresh every step, data from a BEIR folder (every rank must see the same mined files)."""
    cfg = _cfg(
        out,
        LOSSES["infonce"],
        data={"train": str(root / "beir"), "split": "train", "negatives": 1},
        refresh={"every_steps": 1, "mine": {"negatives": 2, "depth": 5, "filters": [], "audit_top": 0}},
    )
    return train(cfg, model=_model(False), progress=False, log=lambda m: None, dist=dist)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    name = json.loads((out / "checkpoints" / "latest.json").read_text())["checkpoint"]
    return load_file(str(out / "checkpoints" / name / "model.safetensors"))


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def _run_mlm_warmup(out: Path, dist: Dist) -> None:
    """A Uni-Encoder with a new MLM head fitted alone for 3 steps, then 1 epoch; each rank saves
    its head as warmed (before step 1) and its log."""
    from unirank.models.backbone import tiny_backbone
    from unirank.models.uni import UniEncoder

    model = UniEncoder(tiny_backbone(hidden=16, seed=0), max_context_length=16, max_candidate_length=8)
    warmed: dict[str, torch.Tensor] = {}
    lines: list[str] = []
    cfg = _cfg(
        out,
        {"ce": 1.0},
        in_batch_negatives=False,
        epochs=1,
        mlm={"weight": 1.0, "head_warmup_steps": 3, "head_warmup_lr": 1e-2},
    )
    import unirank.train as T

    real = T.warm_mlm_head

    def spy(m, batches, c, d=None):
        losses = real(m, batches, c, d)
        warmed.update({k: v.detach().clone() for k, v in m.mlm_head.state_dict().items() if k != "decoder_weight"})
        return losses

    T.warm_mlm_head = spy
    try:
        train(cfg, model=model, examples=_examples_all_negatives(), progress=False, log=lines.append, dist=dist)
    finally:
        T.warm_mlm_head = real
    torch.save({"warmed": warmed, "log": lines}, out / f"warm-{dist.rank}.pt")


class _WrongSlotDist(Dist):
    """The classic bug: the local tensor is put into slot 0 instead of slot ``rank``."""

    def gather(self, x):
        g = all_gather_with_grad(x.detach())
        return torch.cat([x, g[len(x) :]])  # right on rank 0 only


def _worker(rank: int, port: int, root: str, scenarios: tuple[str, ...]) -> None:
    import torch.distributed as tdist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    tdist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    root_p = Path(root)
    d = Dist(rank, WORLD)
    try:
        if "gather" in scenarios:
            # all_gather_with_grad: uneven sizes, rank order, gradient only into the local slot
            x = torch.full((rank + 1, 2), float(rank + 1), requires_grad=True)  # rank 0: 1 row, rank 1: 2 rows
            g = all_gather_with_grad(x)
            (g * torch.arange(6.0).view(3, 2)).sum().backward()
            (root_p / f"gather-{rank}.json").write_text(json.dumps({"values": g.tolist(), "grad": x.grad.tolist()}))
        for name, losses in LOSSES.items():
            if name in scenarios:
                _run(root_p / f"ddp-{name}", losses, d)
        if "listwise" in scenarios:  # no gathering: each rank scores its own rows (rank 1 gets none in the last batch)
            _run(
                root_p / "ddp-listwise",
                LOSSES["infonce"],
                d,
                in_batch_negatives=False,
                examples=_examples_all_negatives(),
            )
        if "refresh" in scenarios:
            _run_refresh(root_p, root_p / "ddp-refresh", d)
        if "gradcache" in scenarios:
            _run(root_p / "ddp-gradcache", LOSSES["infonce"], d, grad_cache=True, chunk_size=1)
        if "mlm-warmup" in scenarios:
            (root_p / "ddp-mlm").mkdir(exist_ok=True)
            _run_mlm_warmup(root_p / "ddp-mlm", d)
        if "wrong-slot" in scenarios:
            _run(root_p / "ddp-wrong-slot", LOSSES["infonce"], _WrongSlotDist(rank, WORLD))
        if "resume" in scenarios:  # dropout on: each rank's random state must be restored
            _run(root_p / "ddp-full", LOSSES["infonce"], d, dropout=True, save_every=1)
            _run(root_p / "ddp-resumed", LOSSES["infonce"], d, dropout=True, save_every=1, stop_after=1)
            _run(root_p / "ddp-resumed", LOSSES["infonce"], d, dropout=True, save_every=1, resume=True)
    finally:
        tdist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(root: Path, *scenarios: str) -> Path:
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(_free_port(), str(root), scenarios), nprocs=WORLD, join=True)
    return root


@pytest.fixture(scope="module")
def ddp_fast(tmp_path_factory) -> Path:
    """Gather + infonce: the default (fast) distributed check."""
    root = tmp_path_factory.mktemp("ddp-fast")
    _beir(root)
    return _spawn(root, "gather", "infonce", "listwise", "refresh", "gradcache", "mlm-warmup")


@pytest.fixture(scope="module")
def ddp_slow(tmp_path_factory) -> Path:
    return _spawn(tmp_path_factory.mktemp("ddp-slow"), "mw", "wrong-slot", "resume")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Path]:
    """Single-process runs over the same global batches, one per loss (built on first use)."""
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = tmp_path_factory.mktemp(f"ref-{name}")
            if name == "listwise":
                _run(
                    cache[name], LOSSES["infonce"], Dist(), in_batch_negatives=False, examples=_examples_all_negatives()
                )
            elif name == "refresh":
                _beir(cache[name])
                _run_refresh(cache[name], cache[name] / "run", Dist())
                cache[name] = cache[name] / "run"
            else:
                _run(cache[name], LOSSES[name], Dist())
        return cache[name]

    return get


def test_all_gather_with_grad_offsets(ddp_fast: Path) -> None:
    # gathered: [[1,1],[2,2],[2,2]]; weights arange(6).view(3,2): rank 0's row is row 0, rank 1's rows are 1-2
    for rank, grad in ((0, [[0.0, 1.0]]), (1, [[2.0, 3.0], [4.0, 5.0]])):
        got = json.loads((ddp_fast / f"gather-{rank}.json").read_text())
        assert got["values"] == [[1.0, 1.0], [2.0, 2.0], [2.0, 2.0]]
        assert got["grad"] == grad


def _check_equal(ref_dir: Path, ddp: Path) -> None:
    ref_losses, ddp_losses = _losses(ref_dir), _losses(ddp)
    assert len(ref_losses) == len(ddp_losses) == 6  # 9 rows: batches of 4, 4, 1 (rank 1 empty), 2 epochs
    assert ddp_losses == pytest.approx(ref_losses, rel=1e-4, abs=1e-6)
    ref, got = _weights(ref_dir), _weights(ddp)
    assert ref.keys() == got.keys()
    start = _model(False).state_dict()
    assert max(float((ref[k] - start[k]).abs().max()) for k in ref) > 1e-3  # training moved the weights
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-5)


def test_two_processes_equal_one_infonce(ddp_fast: Path, reference) -> None:
    ddp = ddp_fast / "ddp-infonce"
    _check_equal(reference("infonce"), ddp)
    # only rank 0 wrote outputs; every other rank added its random state to the checkpoint
    assert (ddp / "summary.json").is_file() and (ddp / "model").is_dir()
    ck = ddp / "checkpoints" / json.loads((ddp / "checkpoints" / "latest.json").read_text())["checkpoint"]
    assert (ck / "rng-rank1.json").is_file() and not (ck / "rng-rank0.json").exists()


def test_listwise_two_processes_equal_one_with_an_uneven_last_batch(ddp_fast: Path, reference) -> None:
    """Without gathering each rank's mean is weighted by its share of the rows, so a last batch
    of one row (rank 1 empty) still gives the single-process gradient; the logged loss is global."""
    _check_equal(reference("listwise"), ddp_fast / "ddp-listwise")


def test_ance_refresh_under_two_processes_equals_one(ddp_fast: Path, reference) -> None:
    ref, ddp = reference("refresh"), ddp_fast / "ddp-refresh"
    mined = sorted(p.name for p in (ddp / "refresh").iterdir())
    assert mined == sorted(p.name for p in (ref / "refresh").iterdir()) and len(mined) >= 2
    for name in mined:  # rank 0 mined with the same model (up to float rounding) as the single process did
        a, b = (
            [json.loads(x) for x in (d / "refresh" / name / "train.jsonl").read_text().splitlines()] for d in (ddp, ref)
        )
        assert [[n["id"] for n in r["negatives"]] for r in a] == [[n["id"] for n in r["negatives"]] for r in b]
        assert [n["score"] for r in a for n in r["negatives"]] == pytest.approx(
            [n["score"] for r in b for n in r["negatives"]], abs=1e-5
        )
    assert _losses(ddp) == pytest.approx(_losses(ref), rel=1e-4, abs=1e-6)
    ref_w, got = _weights(ref), _weights(ddp)
    for k in ref_w:
        torch.testing.assert_close(got[k], ref_w[k], rtol=1e-4, atol=1e-5)


def test_mlm_head_warmup_keeps_the_ranks_heads_equal(ddp_fast: Path) -> None:
    """Each rank warms the new head on its share of the global batches (gradients averaged),
    and every rank starts training with the same, moved head."""
    from unirank.models.backbone import tiny_backbone
    from unirank.models.uni import UniEncoder

    r0, r1 = (torch.load(ddp_fast / "ddp-mlm" / f"warm-{r}.pt") for r in range(WORLD))
    assert r0["warmed"].keys() == r1["warmed"].keys() and r0["warmed"]
    for k in r0["warmed"]:
        assert torch.equal(r0["warmed"][k], r1["warmed"][k]), k
    fresh = UniEncoder(tiny_backbone(hidden=16, seed=0), max_context_length=16, max_candidate_length=8)
    fresh.add_mlm_head(seed=42)  # the run's seed: the head the warm-up started from
    assert not torch.equal(fresh.mlm_head.dense.weight, r0["warmed"]["dense.weight"])
    assert sum(x.startswith("mlm: fitted the new MLM head alone for 3 steps") for x in r0["log"]) == 1


@pytest.mark.slow
def test_two_processes_equal_one_mw_global(ddp_slow: Path, reference) -> None:
    _check_equal(reference("mw"), ddp_slow / "ddp-mw")


def test_grad_cache_two_processes_equal_one(ddp_fast: Path, reference) -> None:
    """Includes a short last batch where rank 1 embeds nothing."""
    _check_equal(reference("infonce"), ddp_fast / "ddp-gradcache")


@pytest.mark.slow
def test_wrong_gather_slot_is_caught(ddp_slow: Path, reference) -> None:
    """Putting the local part into the wrong slot (a wrong rank offset) changes loss and weights."""
    ref_dir = reference("infonce")
    ref, bad = _weights(ref_dir), _weights(ddp_slow / "ddp-wrong-slot")
    assert max(float((ref[k] - bad[k]).abs().max()) for k in ref) > 1e-3
    assert _losses(ddp_slow / "ddp-wrong-slot") != pytest.approx(_losses(ref_dir), rel=1e-4)


@pytest.mark.slow
def test_distributed_resume_is_exact(ddp_slow: Path) -> None:
    full, resumed = _weights(ddp_slow / "ddp-full"), _weights(ddp_slow / "ddp-resumed")
    for k in full:
        assert torch.equal(full[k], resumed[k]), k
    assert _losses(ddp_slow / "ddp-full") == _losses(ddp_slow / "ddp-resumed")


def test_distributed_batch_sampler_partitions_global_batches() -> None:
    from unirank.training.batching import build_batch_sampler
    from unirank.training.data import Row

    rows = [Row(f"q{i}", f"query {i}", Candidate(f"d{i % 5}", f"doc {i % 5}"), (), frozenset()) for i in range(11)]
    base = build_batch_sampler("no_duplicates", batch_size=4, seed=3)
    glob = base.batches(rows, epoch=1)
    local = [DistributedBatchSampler(base, r, 2).batches(rows, epoch=1) for r in range(2)]
    assert [a + b for a, b in zip(*local)] == glob
    assert [len(b) for b in local[0]] == [(len(b) + 1) // 2 for b in glob]  # rank 0 takes the first half
    for b in local[0] + local[1]:  # the no-duplicates property holds inside every local part too
        assert len({rows[i].positive.text for i in b}) == len(b)
    with pytest.raises(ValueError, match="outside world size"):
        DistributedBatchSampler(base, 2, 2)
