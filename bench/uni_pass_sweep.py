"""Where the segmented Uni-Encoder pass beats the masked one: a sweep over candidate length.

Forward-only (inputs packed beforehand and on the device, ``torch.inference_mode``), the
all-MiniLM-L6-v2 architecture (random weights from ``--config``: speed does not depend on weight
values), synthetic token ids of exact lengths: a context segment of ``c`` tokens and ``N``
candidate segments of ``r`` tokens each (specials included), for every ``c`` in ``--contexts``
and ``r`` in ``--replies``. Systems: ``cross`` (the N pairs as rows, a (B, L) padding mask),
``uni masked`` (one row, the dense ``arrow`` mask) and ``uni segmented`` (the same scores,
:mod:`unirank.models.segmented`). Each cell: median of ``--repeats`` passes over ``--batches``
batches of ``--batch`` contexts after one warm-up pass; systems interleaved; candidates/s.
The two uni passes are checked to give the same scores.

Usage:
    python3 bench/uni_pass_sweep.py --config DIR [--device cuda] [--dtype bf16] [--contexts 64,256]
        [--replies 16,32,64,128,256] [--n 10] [--batch 16] [--batches 4] [--repeats 5] [--mixed SHORT] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a plain checkout (the GPU box) too


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="folder with config.json + tokenizer files (random-init backbone)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--contexts", default="64,256")
    ap.add_argument("--replies", default="16,32,64,128,256")
    ap.add_argument("--n", type=int, default=10, help="candidates per context (all in one uni pass)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--mixed",
        type=int,
        default=None,
        help="one candidate of r tokens, the other N-1 of this many (one long reply among short ones)",
    )
    ap.add_argument("--markdown", default=None, help="write the RESULTS.md section here instead of appending it")
    a = ap.parse_args()

    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from unirank.models.backbone import Backbone
    from unirank.models.cross import CrossEncoder
    from unirank.models.uni import UniEncoder

    if a.threads:
        torch.set_num_threads(a.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_pretrained(a.config), attn_implementation="sdpa").eval()
    tok = AutoTokenizer.from_pretrained(a.config)
    contexts, replies = [int(x) for x in a.contexts.split(",")], [int(x) for x in a.replies.split(",")]
    limits = {"max_context_length": max(contexts), "max_candidate_length": max(replies)}

    def build(cls, **kw):
        torch.manual_seed(1)
        return cls(Backbone(model, tok, "random-init"), **limits, chunk_size=None, **kw).to(a.device, dtype).eval()

    cross, masked, segmented = (
        build(CrossEncoder),
        build(UniEncoder, segmented=False),
        build(UniEncoder, segmented=True),
    )
    segmented.load_state_dict(masked.state_dict())
    rng = torch.Generator().manual_seed(0)

    def ids(n: int) -> list[int]:  # content tokens of a segment of n tokens ([CLS] ... [SEP])
        return torch.randint(1000, tok.vocab_size, (n - 2,), generator=rng).tolist()

    def sync() -> None:
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    rows = []
    with torch.inference_mode():
        for c in contexts:
            for r in replies:
                batches = []
                lens = [r] + [a.mixed] * (a.n - 1) if a.mixed else [r] * a.n
                for _ in range(a.batches):
                    ctx = [ids(c) for _ in range(a.batch)]
                    cands = [[ids(k) for k in lens] for _ in range(a.batch)]
                    uni_in = masked.packer.pack_ids(ctx, cands).to(a.device)
                    cross_in = cross.packer.pack_ids(
                        [x for x in ctx for _ in range(a.n)], [[y] for cs in cands for y in cs]
                    ).to(a.device)
                    batches.append((uni_in, cross_in))
                runs = {
                    "cross": lambda b: cross(b[1]),
                    "uni masked": lambda b: masked(b[0]),
                    "uni segmented": lambda b: segmented(b[0]),
                }
                diff = max(float((masked(b[0]).float() - segmented(b[0]).float()).abs().max()) for b in batches)
                times: dict[str, list[float]] = {k: [] for k in runs}
                names = list(runs)
                for rep in range(a.repeats + 1):
                    for name in names[rep % 3 :] + names[: rep % 3]:
                        sync()
                        t = time.perf_counter()
                        for b in batches:
                            runs[name](b)
                        sync()
                        if rep:
                            times[name].append(time.perf_counter() - t)
                n_cands = a.batch * a.batches * a.n
                speed = {k: n_cands / statistics.median(v) for k, v in times.items()}
                ideal = sum(c + k for k in lens) / (c + sum(lens))  # N(c+r)/(c+Nr) for equal lengths
                rows.append(
                    f"| {c} | {r} | {ideal:.2f} | {speed['cross']:.0f} | {speed['uni masked']:.0f} "
                    f"({speed['uni masked'] / speed['cross']:.2f}x) | {speed['uni segmented']:.0f} "
                    f"({speed['uni segmented'] / speed['cross']:.2f}x) | "
                    f"{speed['uni segmented'] / speed['uni masked']:.2f} | {diff:.1e} |"
                )
                print(rows[-1], flush=True)
    table = [
        "| c | r | ideal N(c+r)/(c+Nr) | cross cand/s | uni masked cand/s (x cross) | uni segmented cand/s (x cross) "
        "| segmented / masked | max score diff |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _record import host, record, section

    machine = (
        f"{host(a.device)}; MiniLM architecture, random weights, {a.dtype}; N = {a.n}"
        + (f" (one candidate of r tokens, {a.n - 1} of {a.mixed})" if a.mixed else "")
        + f", {a.batches} batches of {a.batch} contexts, forward-only, median of {a.repeats} passes after a warm-up"
    )
    record(
        section("Uni-Encoder masked vs segmented pass by candidate length", "uni_pass_sweep.py", machine, table),
        a.markdown,
    )


if __name__ == "__main__":
    main()
