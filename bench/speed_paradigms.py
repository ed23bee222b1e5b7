"""Inference speed of the ranking paradigms side by side (issue 6's must-show).

    .venv/bin/python bench/speed_paradigms.py [--device cpu|cuda] [--dtype fp32|bf16] [--json OUT.json]
    .venv/bin/python bench/speed_paradigms.py --save-inputs bench/out/speed_inputs.json   # build inputs once
    python3 bench/speed_paradigms.py --inputs FILE --random-weights DIR --device cuda      # e.g. on a GPU box
    .venv/bin/python bench/speed_paradigms.py --render cpu.json gpu.json --append          # RESULTS.md section

One run times every system on the same backbone (all-MiniLM-L6-v2: 6 layers, hidden 384)
and the same inputs, 10 candidates per context:

* ``cross``: each (context, candidate) pair encoded jointly, ``[CLS] ctx [SEP] cand [SEP]``,
  as :class:`~unirank.models.cross.CrossEncoder` runs it (a plain (B, L) padding mask, so
  the attention kernels skip the mask when a batch has no padding; runs before 2026-11-23
  03:30 UTC gave it a 4-D boolean ``full`` mask);
* ``cross 2-D mask``: the bench's own copy of that padding-mask forward (the stronger
  baseline of the early runs; now the same computation as ``cross``);
* ``uni arrow`` / ``uni arrow_strict``: the Uni-Encoder, one row per context holding all
  10 candidates (positions restart at the context length), in one masked pass
  (``segmented: false``, as every recorded run measured; ``bench/uni_pass_sweep.py`` compares
  the segmented pass);
* ``bi``: context and candidates encoded separately (candidates freshly encoded, nothing
  cached), cosine;
* ``poly``: 16 codes over the context tokens, candidates encoded separately.

Two settings. **Ubuntu-like**: the context segment is exactly ``c = 256`` tokens
(``[CLS]``/``[SEP]`` and turn separators included) and every candidate segment ``r = 32``
(``[CLS] cand [SEP]``), synthesised from real DailyDialog words (whole utterances as turns,
the last one filled word by word; the lengths are checked with the models' own packer).
**DailyDialog**: a seeded sample of the R10 test task built by
:func:`unirank.data.dialogue.build_dailydialog_task`; ``c`` and ``r`` are its measured mean
segment lengths (context capped at 256, candidates at 64).

Beside each setting the ideal token ratio ``N(c + r) / (c + N r)`` is printed: how many
times fewer tokens the Uni-Encoder processes than a cross-encoder (attention cost aside).

Each system is timed two ways, over the same batches: **end-to-end** (``ranker.score``:
tokenisation, packing, forward, head) and **forward-only** (inputs tokenised and packed
beforehand and already on the device; the timed part is the model and its head). The
forward-only path's scores are checked against the end-to-end scores. After warm-up
passes, each measurement is the median over repeated passes of the wall time of one pass
over all batches (CUDA synchronised); systems are interleaved pass by pass, so load from
other processes on a shared machine hits all of them alike. Throughput = candidates scored
per second.

On a GPU machine without the packaged MiniLM, ``--random-weights DIR`` builds the same
architecture from ``DIR/config.json`` with random weights (speed does not depend on weight
values) and the tokenizer files in ``DIR``; ``--inputs`` reads texts saved here with
``--save-inputs`` so that both machines score identical inputs.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run from a plain checkout too (the GPU box has no editable install)

N_CANDIDATES = 10
UBUNTU_C, UBUNTU_R = 256, 32
MAX_CONTEXT, MAX_CANDIDATE = 256, 64
SYSTEMS = ("cross", "cross 2-D mask", "uni arrow", "uni arrow_strict", "bi", "poly")


# --------------------------------------------------------------------------- machine / inputs


def machine(device: str) -> str:
    import torch

    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if device.startswith("cuda") else ""
    return (
        f"{os.cpu_count()} cores ({cpu}), torch threads {torch.get_num_threads()}{gpu}, "
        f"{platform.system()} {platform.release()}, torch {torch.__version__}"
    )


def ideal_ratio(c: float, r: float, n: int = N_CANDIDATES) -> float:
    """Tokens a cross-encoder processes over tokens the Uni-Encoder processes: N(c+r)/(c+Nr).

    Example:
        >>> round(ideal_ratio(256, 32), 3)
        5.0
    """
    return n * (c + r) / (c + n * r)


def _utterances(data_root: Path, seed: int) -> list[str]:
    import numpy as np

    from unirank.data.dialogue import read_dailydialog

    dialogues, _ = read_dailydialog(data_root / "dailydialog" / "train" / "dialogues_train.txt")
    utts = [u for d in dialogues for u in d]
    order = np.random.default_rng(seed).permutation(len(utts))
    return [utts[i] for i in order]


class _Filler:
    """Draws real utterances (and their words) in order, counting MiniLM tokens exactly."""

    def __init__(self, tokenizer: Any, utterances: list[str]) -> None:
        self.tok, self.utts, self.i = tokenizer, utterances, 0
        self.cache: dict[str, int] = {}

    def ntok(self, text: str) -> int:
        if text not in self.cache:
            self.cache[text] = len(self.tok(text, add_special_tokens=False)["input_ids"])
        return self.cache[text]

    def next_utterance(self) -> str:
        u = self.utts[self.i % len(self.utts)]
        self.i += 1
        return u

    def exact(self, n: int) -> str:
        """A text of exactly ``n`` tokens from whole words of the next utterances."""
        words: list[str] = []
        have = 0
        while have < n:
            for w in self.next_utterance().split():
                k = self.ntok(w)
                if have + k <= n:
                    words.append(w)
                    have += k
                if have == n:
                    break
        return " ".join(words)

    def context(self, n: int) -> list[str]:
        """Turns (whole utterances, the last one filled) of exactly ``n`` tokens with one separator between turns."""
        turns: list[str] = []
        have = 0
        while True:
            u = self.next_utterance()
            need = self.ntok(u) + (1 if turns else 0)
            if have + need > n - 2:  # leave room for a separator and a >= 1-token filler turn
                break
            turns.append(u)
            have += need
        turns.append(self.exact(n - have - (1 if turns else 0)))
        return turns


def ubuntu_like_inputs(tokenizer: Any, n_examples: int, data_root: Path, seed: int = 0) -> dict[str, Any]:
    fill = _Filler(tokenizer, _utterances(data_root, seed))
    contexts = [fill.context(UBUNTU_C - 2) for _ in range(n_examples)]
    candidates = [[fill.exact(UBUNTU_R - 2) for _ in range(N_CANDIDATES)] for _ in range(n_examples)]
    return {"contexts": contexts, "candidates": candidates}


def dailydialog_inputs(tokenizer: Any, n_examples: int, data_root: Path, seed: int = 0) -> dict[str, Any]:
    import numpy as np

    from unirank.data.dialogue import build_dailydialog_task
    from unirank.models.inputs import TextPacker

    task = build_dailydialog_task("test", n=N_CANDIDATES, seed=seed, root=data_root / "dailydialog")
    pick = np.random.default_rng(seed).choice(len(task.examples), size=n_examples, replace=False)
    exs = [task.examples[i] for i in sorted(pick.tolist())]
    packer = TextPacker(tokenizer, max_context_length=MAX_CONTEXT, max_candidate_length=MAX_CANDIDATE)
    c_all, r_all = segment_lengths(
        packer, [e.context for e in task.examples], [c for e in task.examples for c in e.candidates]
    )
    return {
        "contexts": [e.context for e in exs],
        "candidates": [e.candidates for e in exs],
        "task": {"c": c_all, "r": r_all, "ideal_ratio": ideal_ratio(c_all, r_all), "counts": task.manifest["counts"]},
    }


def segment_lengths(packer: Any, contexts: list, candidates: list[str]) -> tuple[float, float]:
    """Mean context segment and candidate segment lengths (special tokens included) as packed."""
    c = [len(x) + 2 for x in packer.context_ids(contexts)]
    r = [len(x) + 2 for x in packer.candidate_ids(candidates)]
    return sum(c) / len(c), sum(r) / len(r)


# --------------------------------------------------------------------------- models


def _plain_mask_cross() -> type:
    """CrossEncoder that hands the backbone a (B, L) padding mask instead of the 4-D ``full`` mask."""
    from unirank.models.cross import CrossEncoder
    from unirank.models.heads import PACKED_POOLINGS

    class PlainMaskCross(CrossEncoder):
        def forward(self, packed: Any) -> Any:
            hidden = self.encode_packed(packed, None)
            pooled = PACKED_POOLINGS.get(self.pooling)(hidden, packed.segment_ids.to(hidden.device))
            return self.head(pooled.to(self.head.weight.dtype)).squeeze(-1)

    return PlainMaskCross


def build_systems(random_weights: str | None, device: Any, dtype: Any, only: list[str] | None = None) -> dict[str, Any]:
    """The systems on one backbone (identical weights), in eval mode on ``device``."""
    import torch

    from unirank.models.base import model_class

    settings = {
        "cross": (
            "cross",
            {"max_context_length": MAX_CONTEXT, "max_candidate_length": MAX_CANDIDATE, "chunk_size": None},
        ),
        "cross 2-D mask": (
            "cross-plain",
            {"max_context_length": MAX_CONTEXT, "max_candidate_length": MAX_CANDIDATE, "chunk_size": None},
        ),
        "uni arrow": (
            "uni",
            {
                "mask": "arrow",
                "segmented": False,
                "max_context_length": MAX_CONTEXT,
                "max_candidate_length": MAX_CANDIDATE,
                "chunk_size": None,
            },
        ),
        "uni arrow_strict": (
            "uni",
            {
                "mask": "arrow_strict",
                "segmented": False,
                "max_context_length": MAX_CONTEXT,
                "max_candidate_length": MAX_CANDIDATE,
                "chunk_size": None,
            },
        ),
        "bi": ("bi", {"max_length": MAX_CONTEXT}),
        "poly": (
            "poly",
            {
                "n_codes": 16,
                "max_context_length": MAX_CONTEXT,
                "max_candidate_length": MAX_CANDIDATE,
                "chunk_size": 1 << 16,
            },
        ),
    }
    base = None
    if random_weights:
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        from unirank.models.backbone import Backbone

        torch.manual_seed(0)
        cfg = AutoConfig.from_pretrained(random_weights)
        model = AutoModel.from_config(cfg, attn_implementation="sdpa")
        base = Backbone(
            model.eval(), AutoTokenizer.from_pretrained(random_weights), f"random-init:{Path(random_weights).name}"
        )
    out = {}
    for name, (kind, kw) in settings.items():
        if only and name not in only:
            continue
        cls = _plain_mask_cross() if kind == "cross-plain" else model_class(kind)
        torch.manual_seed(1)  # same head initialisation in every run
        if base is None:
            m = cls.from_pretrained(None, **kw)
        else:
            from unirank.models.backbone import Backbone

            m = cls(Backbone(copy.deepcopy(base.model), base.tokenizer, base.source), **kw)
        for p in m.parameters():
            p.requires_grad_(False)
        out[name] = m.to(device=device, dtype=dtype).eval()
    return out


def forward_only(name: str, m: Any, contexts: list, candidates: list[list[str]], device: Any) -> Callable[[], Any]:
    """Tokenise and pack now; return a function that runs only the model (and head)."""
    import torch

    flat = [c for cs in candidates for c in cs]
    B, N = len(contexts), len(candidates[0])
    if name.startswith("uni"):
        packed = m.packer.pack(contexts, candidates).to(device)
        return lambda: m(packed)
    if name.startswith("cross"):
        ctx = m.packer.context_ids(contexts)
        cand = m.packer.candidate_ids(flat)
        packed = m.packer.pack_ids([ctx[i // N] for i in range(B * N)], [[c] for c in cand]).to(device)
        return lambda: m(packed).view(B, N)
    if name == "bi":
        # the same token ids as BiEncoder.score (dialogue contexts keep their most recent tokens)
        qi, qm = m._pad(m._context_token_ids(contexts, m.max_length), torch.device(device))
        di, dm = m._pad(m._token_ids([m.doc_prefix + t for t in flat], m.max_length), torch.device(device))
        q = {"input_ids": qi, "attention_mask": qm}
        d = {"input_ids": di, "attention_mask": dm}

        def bi() -> torch.Tensor:
            qv = m._vectors(q["input_ids"], q["attention_mask"])
            dv = m._vectors(d["input_ids"], d["attention_mask"]).view(B, N, -1)
            return (qv[:, None, :] * dv).sum(-1)  # cosine of unit vectors

        return bi
    if name == "poly":
        from unirank.models.heads import PACKED_POOLINGS
        from unirank.models.poly import ATTENTION_SCALES, poly_attention

        ctx = m.packer.pack_contexts(contexts).to(device)
        cand = m.packer.pack_single(flat, m.packer.max_candidate_length).to(device)
        pool = PACKED_POOLINGS.get(m.candidate_pooling)

        def poly() -> torch.Tensor:
            hidden = m.encode_packed(ctx, None)
            codes = m.codes.to(hidden.dtype).unsqueeze(0).expand(B, -1, -1)
            scale = ATTENTION_SCALES.get(m.codes_attention)(hidden.shape[-1])
            ctx_codes = poly_attention(codes, hidden, hidden, ctx.segment_ids >= 0, scale)
            ch = m.encode_packed(cand, None, encoder=m.candidate_encoder)
            vecs = pool(ch, cand.segment_ids).view(B, N, -1)
            return m.score_embeddings(ctx_codes, vecs)

        return poly
    raise KeyError(name)


def _sync(device: Any) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_pass(fns: list[Callable[[], Any]], device: Any) -> float:
    """Wall seconds of one pass over ``fns`` (CUDA synchronised before and after)."""
    _sync(device)
    t = time.perf_counter()
    for f in fns:
        f()
    _sync(device)
    return time.perf_counter() - t


def bench_setting(
    systems: dict[str, Any], contexts: list, candidates: list, batch: int, device: Any, warmup: int, repeats: int
) -> list[dict[str, Any]]:
    """Time every system end-to-end and forward-only over the same batches.

    Systems are interleaved (each repeat times every system once, in a rotating order), so
    load from other processes on a shared machine hits all of them alike.
    """
    import torch

    batches = [(contexts[i : i + batch], candidates[i : i + batch]) for i in range(0, len(contexts), batch)]
    n_cands = sum(len(c) for c in candidates)
    names = list(systems)
    e2e, fwd, diffs = {}, {}, {}
    with torch.inference_mode():
        for name, m in systems.items():
            e2e[name] = [lambda m=m, c=c, d=d: m.score(c, d) for c, d in batches]
            fwd[name] = [forward_only(name, m, c, d, device) for c, d in batches]
            a, b = m.score(*batches[0]).float(), fwd[name][0]().float()  # the same scores both ways
            diffs[name] = float((a - b).abs().max()) / (float(a.abs().max()) or 1.0)
            if diffs[name] > 2e-2:
                raise AssertionError(f"{name}: forward-only scores differ from score() by {diffs[name]:.3g} (relative)")
        times: dict[str, dict[str, list[float]]] = {n: {"e2e": [], "fwd": []} for n in names}
        for rep in range(warmup + repeats):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                for mode, fns in (("e2e", e2e[name]), ("fwd", fwd[name])):
                    t = time_pass(fns, device)
                    if rep >= warmup:
                        times[name][mode].append(t)
    peak = {}
    if str(device).startswith("cuda"):  # peak memory of one end-to-end pass, per system
        for name in names:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            with torch.inference_mode():
                time_pass(e2e[name], device)
            peak[name] = torch.cuda.max_memory_allocated() / 2**20
    rows = []
    for name in names:
        t_e2e, t_fwd = times[name]["e2e"], times[name]["fwd"]
        row = {
            "system": name,
            "e2e_s": statistics.median(t_e2e),
            "fwd_s": statistics.median(t_fwd),
            "e2e_runs_s": [round(x, 4) for x in t_e2e],
            "fwd_runs_s": [round(x, 4) for x in t_fwd],
            "score_check_rel_diff": diffs[name],
        }
        row["e2e_cands_per_s"] = n_cands / row["e2e_s"]
        row["fwd_cands_per_s"] = n_cands / row["fwd_s"]
        if name in peak:
            row["peak_mem_mib"] = peak[name]
        rows.append(row)
        print(
            f"  {name:18s} e2e {row['e2e_cands_per_s']:9.1f} cand/s   fwd {row['fwd_cands_per_s']:9.1f} cand/s",
            flush=True,
        )
    cross = next(r for r in rows if r["system"] == "cross")
    crosses = [r for r in rows if r["system"].startswith("cross")]
    best_e2e = max(r["e2e_cands_per_s"] for r in crosses)
    best_fwd = max(r["fwd_cands_per_s"] for r in crosses)
    for r in rows:
        r["e2e_speedup_vs_cross"] = r["e2e_cands_per_s"] / cross["e2e_cands_per_s"]
        r["fwd_speedup_vs_cross"] = r["fwd_cands_per_s"] / cross["fwd_cands_per_s"]
        r["e2e_speedup_vs_best_cross"] = r["e2e_cands_per_s"] / best_e2e
        r["fwd_speedup_vs_best_cross"] = r["fwd_cands_per_s"] / best_fwd
    return rows


# --------------------------------------------------------------------------- report


def render(results: list[dict[str, Any]]) -> str:
    out = []
    for res in results:
        load = res.get("load_average_before_after")
        out.append(
            f"**{res['device_label']}** — {res['machine']}; {res['date']}; {res['weights']}; dtype {res['dtype']}; "
            f"warm-up {res['warmup']}, median of {res['repeats']} interleaved passes"
            + (f"; 1-min load average before/after: {load[0]}/{load[1]}" if load else "")
            + "\n"
        )
        for s in res["settings"]:
            out.append(
                f"*{s['name']}*: N = {N_CANDIDATES}, c = {s['c']:.1f}, r = {s['r']:.1f} tokens "
                f"(ideal ratio N(c+r)/(c+Nr) = **{s['ideal_ratio']:.2f}**); {s['n_contexts']} contexts "
                f"in batches of {s['batch']} ({s['n_contexts'] * N_CANDIDATES} candidates per pass)\n"
            )
            if "whole_task" in s:
                w = s["whole_task"]
                out.append(
                    f"(whole DailyDialog R10 test task: c = {w['c']:.1f}, r = {w['r']:.1f}, ideal ratio "
                    f"{w['ideal_ratio']:.2f}; {w['counts']['examples']} contexts)\n"
                )
            mem = any("peak_mem_mib" in r for r in s["results"])
            out.append(
                "| system | end-to-end cand/s | × cross | × best cross | forward-only cand/s | × cross | × best cross "
                "| tokenise+pack share |" + (" peak MiB |" if mem else "")
            )
            out.append("|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if mem else ""))
            for r in s["results"]:
                share = max(0.0, 1 - r["fwd_s"] / r["e2e_s"])
                out.append(
                    f"| {r['system']} | {r['e2e_cands_per_s']:.1f} | {r['e2e_speedup_vs_cross']:.2f} | "
                    f"{r.get('e2e_speedup_vs_best_cross', r['e2e_speedup_vs_cross']):.2f} | "
                    f"{r['fwd_cands_per_s']:.1f} | {r['fwd_speedup_vs_cross']:.2f} | "
                    f"{r.get('fwd_speedup_vs_best_cross', r['fwd_speedup_vs_cross']):.2f} | {share:.0%} |"
                    + (f" {r.get('peak_mem_mib', float('nan')):.0f} |" if mem else "")
                )
            out.append("")
    return "\n".join(out)


def append_results(results: list[dict[str, Any]], command: str) -> None:
    text = (
        "\n## Inference speed of the paradigms (issue 6)\n\n"
        f"Command(s): `{command}` (see `bench/speed_paradigms.py` for the method).\n"
        "Same backbone (all-MiniLM-L6-v2 architecture, 6 layers, hidden 384), same inputs, 10 candidates "
        "per context. `× cross` is the throughput ratio to the cross-encoder in the same run. Heads are "
        "untrained (speed does not depend on weight values; the GPU run uses random weights from the "
        "packaged config.json).\n\n" + render(results) + "\n"
    )
    with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write(text)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--batch", type=int, default=None, help="contexts per call (default 8 on CPU, 64 on CUDA)")
    ap.add_argument("--batches", type=int, default=2, help="batches per timed pass")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder holding dailydialog/")
    ap.add_argument(
        "--random-weights", default=None, help="folder with config.json + tokenizer files: random-init backbone"
    )
    ap.add_argument("--inputs", default=None, help="read inputs saved by --save-inputs instead of building them")
    ap.add_argument("--save-inputs", default=None, help="build the inputs, write them to this JSON file and stop")
    ap.add_argument("--only", default=None, help="comma-separated settings: ubuntu_like,dailydialog")
    ap.add_argument(
        "--systems", default=None, help=f"comma-separated subset of: {', '.join(SYSTEMS)} (cross is always run)"
    )
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--label", default=None, help="name of this run in the report (default: the device)")
    ap.add_argument("--render", nargs="+", default=None, help="render result JSON files as markdown")
    ap.add_argument("--append", action="store_true", help="with --render: append the section to bench/RESULTS.md")
    ap.add_argument("--command", default=None, help="with --render --append: the command line(s) to record")
    args = ap.parse_args(argv)

    if args.render:
        results = [json.loads(Path(p).read_text()) for p in args.render]
        print(render(results))
        if args.append:
            append_results(results, args.command or " ; ".join(r["command"] for r in results))
        return

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    batch = args.batch or (64 if device.type == "cuda" else 8)
    n_examples = batch * args.batches
    data_root = Path(args.data)

    if args.inputs:
        inputs = json.loads(Path(args.inputs).read_text())
    else:
        from unirank.models.backbone import load_backbone

        tok = load_backbone(None).tokenizer if args.random_weights is None else None
        if tok is None:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(args.random_weights)
        inputs = {
            "ubuntu_like": ubuntu_like_inputs(tok, n_examples, data_root, args.seed),
            "dailydialog": dailydialog_inputs(tok, n_examples, data_root, args.seed),
        }
    if args.save_inputs:
        Path(args.save_inputs).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save_inputs).write_text(json.dumps(inputs, ensure_ascii=False))
        print(f"wrote {args.save_inputs}")
        return

    t0 = time.perf_counter()
    chosen = None if not args.systems else sorted({"cross", *args.systems.split(",")}, key=SYSTEMS.index)
    systems = build_systems(args.random_weights, device, dtype, chosen)
    print(f"built {len(systems)} systems in {time.perf_counter() - t0:.1f}s on {device} ({args.dtype})", flush=True)
    from unirank.models.inputs import TextPacker

    packer = TextPacker(systems["cross"].tokenizer, max_context_length=MAX_CONTEXT, max_candidate_length=MAX_CANDIDATE)
    wanted = args.only.split(",") if args.only else ["ubuntu_like", "dailydialog"]
    settings = []
    load_before = os.getloadavg()
    for key in wanted:
        inp = inputs[key]
        contexts, candidates = inp["contexts"][:n_examples], inp["candidates"][:n_examples]
        if len(contexts) < n_examples:
            raise SystemExit(f"{key}: the inputs hold {len(contexts)} contexts; --batch x --batches needs {n_examples}")
        flat = [c for cs in candidates for c in cs]
        c, r = segment_lengths(packer, contexts, flat)
        if key == "ubuntu_like" and (c, r) != (UBUNTU_C, UBUNTU_R):
            raise AssertionError(f"synthesised lengths are c={c}, r={r}; expected {UBUNTU_C}, {UBUNTU_R}")
        info = {"whole_task": inp["task"]} if "task" in inp else {}
        name = "Ubuntu-like lengths" if key == "ubuntu_like" else "DailyDialog R10 test (real lengths, seeded sample)"
        print(f"{name}: c={c:.1f} r={r:.1f} ideal ratio {ideal_ratio(c, r):.2f}", flush=True)
        rows = bench_setting(systems, contexts, candidates, batch, device, args.warmup, args.repeats)
        settings.append(
            {
                "name": name,
                "key": key,
                "c": c,
                "r": r,
                "ideal_ratio": ideal_ratio(c, r),
                "batch": batch,
                "n_contexts": len(contexts),
                "results": rows,
                **info,
            }
        )
    result = {
        "device_label": args.label or (f"GPU ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else "CPU"),
        "machine": machine(str(device)),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/speed_paradigms.py "
        + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "dtype": args.dtype,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "weights": "random-init from config.json" if args.random_weights else "packaged all-MiniLM-L6-v2",
        "settings": settings,
    }
    print(render([result]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
