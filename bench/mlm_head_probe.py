"""Why the Uni-Encoder recipe's MLM loss drowns ranking on all-MiniLM-L6-v2 (issue 17), and
whether fitting the new MLM head first (encoder frozen) would fix it.

On batches of DailyDialog training contexts packed with their batch's gold replies (the
recipe's in-batch candidates, speaker tokens, 128/32 tokens, 15% masking), the Uni-Encoder
(all-MiniLM-L6-v2 by default) is scored on the masked input and two gradients into the
*encoder* are taken from the same forward pass: the ranking cross-entropy's and the MLM
loss's. Their norms (and ratio) are reported

1. with the head :meth:`add_mlm_head` gives the model (a new one for MiniLM, the checkpoint's
   own for a ``*ForMaskedLM`` checkpoint: ``--model bert-base-uncased`` when online), then
2. after ``--head-steps`` AdamW steps on the head alone (transform + bias; the encoder and the
   tied decoder frozen), logging the MLM loss on the way.

A ratio far above 1 means that, with the gradient clipped at norm 1 as the recipe trains, the
ranking loss gets only a small share of every update.

Usage:
    python bench/mlm_head_probe.py [--model DIR] [--head-steps 100] [--head-lr 2e-3] [--batches 3]
        [--threads 2] [--record | --markdown FILE]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEAKERS = ["[unused1]", "[unused2]"]


def batches(data_root: str | None, n_batches: int, size: int, seed: int) -> list[tuple[list[list[str]], list[str]]]:
    """``n_batches`` seeded batches of (contexts, their gold replies) from DailyDialog train,
    without a repeated reply inside a batch (the recipe's ``no_duplicates`` batching)."""
    from unirank.data.dialogue import build_dailydialog_task

    task = build_dailydialog_task("train", n=2, seed=0, root=data_root)
    pairs = [(ex.context, ex.candidates[ex.labels.index(1)]) for ex in task.examples]
    random.Random(seed).shuffle(pairs)
    out, it = [], iter(pairs)
    for _ in range(n_batches):
        ctxs, golds = [], []
        while len(ctxs) < size:
            c, g = next(it)
            if g not in golds:
                ctxs.append(c)
                golds.append(g)
        out.append((ctxs, golds))
    return out


def grad_norms(model: Any, batch: tuple[list[list[str]], list[str]], seed: int) -> dict[str, float]:
    """Ranking CE and MLM loss of one masked in-batch pass, and the norms of their gradients
    into the encoder's parameters: all of them (the word embeddings included - the tied
    decoder is that same matrix, so the MLM gradient there includes the decoder's own) and
    the layers alone (the word embeddings left out)."""
    import torch

    ctxs, golds = batch
    named = [(n, p) for n, p in model.encoder.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    layers = [i for i, (n, _) in enumerate(named) if not n.endswith("word_embeddings.weight")]
    with model.masked_lm(0.15, torch.Generator().manual_seed(seed)) as mlm:
        scores = model.score(ctxs, [golds] * len(ctxs))
    ce = torch.nn.functional.cross_entropy(scores, torch.arange(len(ctxs)))
    lm = mlm.loss()
    g_ce = torch.autograd.grad(ce, params, retain_graph=True, allow_unused=True)
    g_lm = torch.autograd.grad(lm, params, allow_unused=True)

    def norm(gs: tuple[Any, ...]) -> float:
        return float(torch.sqrt(sum((g.float() ** 2).sum() for g in gs if g is not None)))

    n_ce, n_lm = norm(g_ce), norm(g_lm)
    l_ce, l_lm = norm(tuple(g_ce[i] for i in layers)), norm(tuple(g_lm[i] for i in layers))
    return {
        "ce": ce.item(),
        "mlm": lm.item(),
        "grad_ce": n_ce,
        "grad_mlm": n_lm,
        "ratio": n_lm / max(n_ce, 1e-12),
        "layers_ce": l_ce,
        "layers_mlm": l_lm,
        "layers_ratio": l_lm / max(l_ce, 1e-12),
    }


def mean_norms(model: Any, probe: list[Any], seed: int) -> dict[str, float]:
    rows = [grad_norms(model, b, seed + i) for i, b in enumerate(probe)]
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="backbone (default: the packaged all-MiniLM-L6-v2)")
    ap.add_argument("--data-root", default=None, help="the dailydialog folder (default: ../shared/data/dailydialog)")
    ap.add_argument("--head-steps", type=int, default=100)
    ap.add_argument("--head-lr", type=float, default=2e-3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--batches", type=int, default=3, help="probe batches the gradient norms are averaged over")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--record", action="store_true", help="append the section to bench/RESULTS.md")
    ap.add_argument("--markdown", default=None, help="write the section to this file instead")
    a = ap.parse_args()

    import torch

    sys.path.insert(0, str(ROOT))
    from unirank.models.uni import UniEncoder

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    all_batches = batches(a.data_root, a.batches + a.head_steps, a.batch_size, a.seed)
    probe, fit = all_batches[: a.batches], all_batches[a.batches :]
    model = UniEncoder.from_pretrained(
        a.model, max_context_length=128, max_candidate_length=32, speaker_tokens=SPEAKERS
    )
    head = model.add_mlm_head(seed=a.seed)
    model.train()
    t0 = time.perf_counter()
    before = mean_norms(model, probe, a.seed)
    print(f"{model.mlm_head_origin} head: {before}", flush=True)

    for p in model.encoder.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW([p for n, p in head.named_parameters() if n != "decoder_weight"], lr=a.head_lr)
    curve: list[tuple[int, float]] = []
    window: list[float] = []
    for step, (ctxs, golds) in enumerate(fit, 1):
        with model.masked_lm(0.15, torch.Generator().manual_seed(10_000 + step)) as mlm:
            model.score(ctxs, [golds] * len(ctxs))
        loss = mlm.loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        window.append(float(loss))
        if step % 20 == 0 or step == len(fit):
            curve.append((step, sum(window) / len(window)))
            print(f"head step {step}: MLM loss (mean of the last {len(window)}) {curve[-1][1]:.3f}", flush=True)
            window = []
    for p in model.encoder.parameters():
        p.requires_grad_(True)
    after = mean_norms(model, probe, a.seed)
    print(f"after {a.head_steps} head-only steps: {after}", flush=True)
    wall = time.perf_counter() - t0

    from _record import host, record, section

    def row(label: str, r: dict[str, float]) -> str:
        return (
            f"| {label} | {r['ce']:.3f} | {r['mlm']:.3f} | {r['grad_ce']:.3f} | {r['grad_mlm']:.3f} | {r['ratio']:.1f}x "
            f"| {r['layers_ce']:.3f} | {r['layers_mlm']:.3f} | {r['layers_ratio']:.1f}x |"
        )

    body = [
        f"Model: `{a.model or 'all-MiniLM-L6-v2 (packaged)'}`, its MLM head: **{model.mlm_head_origin}**. "
        f"Uni-Encoder with the recipe's inputs (in-batch candidates = the batch's {a.batch_size} gold replies, "
        "speaker tokens, 128/32 tokens, 15% masking, train mode); gradient norms into all the encoder's "
        "parameters (the word embeddings included, which the tied decoder shares) and into its layers alone "
        "(word embeddings left out), "
        f"mean of {a.batches} DailyDialog train batches; head-only fit: {a.head_steps} AdamW steps at lr "
        f"{a.head_lr:g} on other batches, encoder and tied decoder frozen. {wall:.0f} s in all.",
        "",
        "| head | ranking CE | MLM loss | grad norm (CE) | grad norm (MLM) | MLM / CE | layers (CE) | layers (MLM) "
        "| layers MLM / CE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        row(f"{model.mlm_head_origin}, as added", before),
        row(f"after {a.head_steps} head-only steps", after),
        "",
        "MLM loss during the head-only fit (mean of each 20 steps): "
        + ", ".join(f"step {s}: {v:.2f}" for s, v in curve)
        + ".",
    ]
    text = section(
        "MLM head probe: ranking vs MLM gradient into the encoder (issue 17)", "mlm_head_probe.py", host(), body
    )
    print(text)
    if a.record or a.markdown:
        record(text, a.markdown)


if __name__ == "__main__":
    main()
