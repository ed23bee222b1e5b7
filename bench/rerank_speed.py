"""Reranking speed on real passages: cross-encoder vs Uni-Encoder (masked and segmented pass).

The first ``--queries`` SciFact test claims, each with its BM25 top ``--depth`` abstracts
(bm25s, the eval defaults), scored by ``Ranker.score`` under ``torch.inference_mode`` exactly as
``unirank eval --reranker`` does: query 64 / document 256 tokens, all-MiniLM-L6-v2 backbone
(the heads are untrained - speed does not depend on their values), cross-encoder 64 pairs per
pass, Uni-Encoder ``--uni-chunk`` documents per pass (16, as the SciFact rankers suite
evaluates). Each repeat times every system once, in a rotating order (so load from other
processes hits all alike); the table gives the median of ``--repeats`` passes after one warm-up pass.
The segmented Uni-Encoder scores are checked against the masked pass's. ``--markdown FILE``
writes the RESULTS.md section to a file (e.g. on a GPU box, whose files come back by copy).

Usage:
    .venv/bin/python bench/rerank_speed.py [--queries 2] [--depth 100] [--repeats 2] [--uni-chunk 16]
        [--data-root DIR] [--device cuda] [--dtype bf16] [--model DIR] [--no-record | --markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--uni-chunk", type=int, default=16)
    ap.add_argument("--data-root", default=os.environ.get("UNIRANK_DATA"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--model", default=None, help="backbone folder (default: the packaged all-MiniLM-L6-v2)")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument(
        "--markdown", default=None, help="write the RESULTS.md section to this file instead of appending it"
    )
    a = ap.parse_args()

    import torch

    from unirank.data.datasets import load_dataset
    from unirank.data.dialogue import default_data_root
    from unirank.eval.config import RetrieverConfig
    from unirank.eval.evaluate import limit_split, retrieve
    from unirank.eval.metrics import rank_docs
    from unirank.index.retrievers import make_retriever
    from unirank.models.backbone import load_backbone
    from unirank.models.cross import CrossEncoder
    from unirank.models.uni import UniEncoder

    ds = limit_split(load_dataset(str(Path(a.data_root or default_data_root()) / "scifact"), split="test"), a.queries)
    run, _ = retrieve(ds, make_retriever(RetrieverConfig()), a.depth)
    qids = [q for q in ds.qrels if run.get(q)]
    contexts = [ds.queries[q].text for q in qids]
    docs = [[ds.corpus[d].full_text for d in rank_docs(run[q], a.depth)] for q in qids]
    n_docs = sum(len(d) for d in docs)
    lengths = {"max_context_length": 64, "max_candidate_length": 256}
    backbone = load_backbone(a.model)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    systems = {
        "cross (64 pairs / pass)": CrossEncoder(backbone, chunk_size=64, **lengths),
        f"uni masked ({a.uni_chunk} docs / pass)": UniEncoder(
            backbone, chunk_size=a.uni_chunk, segmented=False, **lengths
        ),
        f"uni segmented ({a.uni_chunk} docs / pass)": UniEncoder(
            backbone, chunk_size=a.uni_chunk, segmented=True, **lengths
        ),
    }
    masked = list(systems.values())[1]
    for m in list(systems.values())[2:]:
        m.load_state_dict(masked.state_dict())  # same (random) head, so their scores must agree
    for name in list(systems):
        systems[name] = systems[name].to(device=a.device, dtype=dtype).eval()

    def sync() -> None:
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    times: dict[str, list[float]] = {name: [] for name in systems}
    scores = {}
    with torch.inference_mode():
        names = list(systems)
        for rep in range(a.repeats + 1):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:  # rotate who runs first
                m = systems[name]
                sync()
                t = time.perf_counter()
                scores[name] = m.score(contexts, docs).float()
                sync()
                if rep:  # the first pass warms up
                    times[name].append(time.perf_counter() - t)
    uni = [s for n, s in scores.items() if n.startswith("uni")]
    diffs = [float((u - uni[0]).abs().max()) for u in uni[1:]]
    diff_text = " and ".join(f"{d:.1e}" for d in diffs)
    rows = [(name, statistics.median(ts)) for name, ts in times.items()]
    cross_s = rows[0][1]
    table = ["| system | s per pass | documents / s | vs cross |", "|---|---:|---:|---:|"]
    table += [f"| {name} | {s:.2f} | {n_docs / s:.1f} | {cross_s / s:.2f}x |" for name, s in rows]
    print("\n".join(table))
    print(f"{len(qids)} queries, {n_docs} documents; max |score - masked score| (segmented): {diff_text}")
    if a.no_record:
        return
    from _record import host, record, section

    machine = (
        f"{host(a.device)}, all-MiniLM-L6-v2 {a.dtype}; {len(qids)} SciFact test queries x their BM25 top {a.depth} "
        f"({n_docs} documents), query 64 / document 256 tokens; median of {a.repeats} passes after a warm-up."
    )
    record(
        section(
            "Reranking speed on SciFact passages: cross vs the Uni-Encoder passes",
            "rerank_speed.py",
            machine,
            [*table, "", f"Max |score - masked score| of the other Uni-Encoder passes (segmented): {diff_text}."],
        ),
        a.markdown,
    )


if __name__ == "__main__":
    main()
