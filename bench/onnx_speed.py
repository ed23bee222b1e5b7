"""PyTorch vs ONNX Runtime (fp32, dynamic int8) on the CPU: corpus encoding, cross-encoder
reranking and Uni-Encoder response scoring, with sentence-transformers as the peer for encoding.

Parts (``--parts encode,rerank,response``), every system in its own process, rounds
alternating the order of the systems:

* ``encode``: the first ``--n`` SciFact abstracts (title + text), batch ``--batch-size``,
  ``--max-length`` tokens, packaged all-MiniLM-L6-v2. Systems: unirank ``BiEncoder.encode``
  (PyTorch), unirank ONNX fp32 / int8 (``unirank export --format onnx [--quantize int8]``),
  sentence-transformers PyTorch, and - when ``--st-onnx-path`` names a folder where
  sentence-transformers' ONNX backend is importable (it needs optimum-onnx, which pins
  transformers < 4.58, so it lives in a side ``pip install --target`` folder put first on
  ``PYTHONPATH``) - sentence-transformers ONNX fp32 and dynamic int8 (its
  ``export_dynamic_quantized_onnx_model``, ``--st-qconfig``). Reports texts/s and the max
  embedding difference to unirank PyTorch.
* ``rerank``: ``--cross-model`` (a saved cross-encoder; default: MiniLM with a seeded random
  head - a speed test only) reranks BM25's top ``--depth`` for the first ``--queries`` SciFact
  test queries. Reports pairs/s and nDCG@10 on those queries.
* ``response``: a Uni-Encoder (``--uni-model``; default MiniLM with a seeded random head, so
  R@1 is at chance) scores the first ``--contexts`` MuTual dev contexts' candidates. Reports
  candidates/s and R4@1.

Usage:
    flock /tmp/unirank-cpu.lock .venv/bin/python bench/onnx_speed.py --threads 2 \\
        --st-onnx-path /tmp/st-onnx-site --cross-model bench/out/scifact_cross/model

Appends one section to bench/RESULTS.md (``--markdown FILE`` writes it there instead).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SCIFACT = "../shared/data/scifact"
MUTUAL = "../shared/data/mutual"

ENCODE_SYSTEMS = ["unirank-torch", "unirank-onnx-fp32", "unirank-onnx-int8", "st-torch", "st-onnx-fp32", "st-onnx-int8"]
RANK_SYSTEMS = ["torch", "onnx-fp32", "onnx-int8"]


# ----------------------------------------------------------------------------- workers (one process each)


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def encode_worker(job: dict) -> dict:
    import numpy as np

    _threads(job["threads"])
    from unirank.data.beir import load_corpus

    texts = [d.full_text for d in list(load_corpus(Path(job["data"]) / "corpus.jsonl").values())[: job["n"]]]
    system, bs, L = job["system"], job["batch_size"], job["max_length"]
    if system.startswith("unirank"):
        from unirank.models.bi import BiEncoder
        from unirank.runtime.onnx_models import load_onnx_ranker

        if system == "unirank-torch":
            model = BiEncoder.from_pretrained(None, max_length=L)
        else:
            model = load_onnx_ranker(job["onnx"][system.rsplit("-", 1)[1]], threads=job["threads"], max_length=L)

        def run(t):
            return model.encode(t, batch_size=bs, show_progress=False)
    else:
        from sentence_transformers import SentenceTransformer

        if system == "st-torch":
            model = SentenceTransformer(job["model_dir"], device="cpu")
        else:
            kw = {"file_name": job["st_int8_file"]} if system == "st-onnx-int8" else {}
            model = SentenceTransformer(job["st_onnx_dir"], device="cpu", backend="onnx", model_kwargs=kw)
        model.max_seq_length = L

        def run(t):
            return model.encode(t, batch_size=bs, show_progress_bar=False)

    run(texts[:bs])  # warm-up
    t0 = time.perf_counter()
    out = np.asarray(run(texts), dtype=np.float32)
    sec = time.perf_counter() - t0
    np.save(Path(job["tmp"]) / f"{system}.npy", out)
    import sentence_transformers
    import transformers

    return {
        "seconds": sec,
        "rate": len(texts) / sec,
        "versions": f"transformers {transformers.__version__}, "
        f"sentence-transformers {sentence_transformers.__version__}",
    }


def _ranker(job: dict, kind: str, folder: str) -> object:
    from unirank.models.base import load_ranker

    if job["system"] == "torch":
        return load_ranker(folder, kind, device="cpu", backend="torch")
    return load_ranker(job["onnx"][job["system"].split("-")[1]], kind, backend=f"onnx:threads={job['threads']}")


def rerank_worker(job: dict) -> dict:
    _threads(job["threads"])
    from unirank.eval.config import EvalConfig
    from unirank.eval.rerank import rerank_eval

    ranker = _ranker(job, "cross", job["model"])
    cfg = EvalConfig(data=job["data"], split="test", k=job["depth"], limit_queries=job["queries"], measures=["ndcg@10"])
    ranker.score(["warm-up query"], [["a warm-up document"] * 8])
    _, res = rerank_eval(
        cfg,
        ranker,
        depth=job["depth"],
        chunk_size=job["chunk_size"],
        first_stage=job["run"],
        quiet=True,
        progress=False,
    )
    t = res.info["timings_s"]
    return {
        "seconds": t["rerank_s"],
        "pairs": t["reranked_docs"],
        "rate": t["reranked_docs"] / t["rerank_s"],
        "ndcg@10": res.metrics["ndcg@10"],
    }


def response_worker(job: dict) -> dict:
    _threads(job["threads"])
    from unirank.data.dialogue import load_response_data
    from unirank.eval.response import evaluate_response

    ranker = _ranker(job, "uni", job["model"])
    examples = load_response_data(Path(job["data"]) / "dev", fmt="mutual").examples[: job["contexts"]]
    evaluate_response(ranker, examples[:4], batch_size=job["batch_size"], progress=False)  # warm-up
    t0 = time.perf_counter()
    metrics, _ = evaluate_response(ranker, examples, batch_size=job["batch_size"], ks=(1,), progress=False)
    sec = time.perf_counter() - t0
    n = sum(len(e.candidates) for e in examples)
    r1 = next(v for k, v in metrics.items() if k.lower().startswith("r") and k.endswith("@1"))
    return {"seconds": sec, "candidates": n, "rate": n / sec, "r@1": r1}


WORKERS = {"encode": encode_worker, "rerank": rerank_worker, "response": response_worker}


# ----------------------------------------------------------------------------- driver


def spawn(job: dict, pythonpath: str | None = None) -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, root, env.get("PYTHONPATH")) if p)
    env["TOKENIZERS_PARALLELISM"] = "false"
    p = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True, env=env)
    lines = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"worker {job['part']}/{job['system']} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def rounds(systems: list[str], n: int, run_one) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {s: [] for s in systems}
    for r in range(n):
        for s in systems if r % 2 == 0 else list(reversed(systems)):
            res = run_one(s)
            out[s].append(res)
            print(f"round {r + 1} {s}: {res['rate']:.2f}/s", flush=True)
    return out


def prepare_st_onnx(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    """Export the packaged MiniLM with sentence-transformers' ONNX backend (fp32 + its dynamic int8),
    in the side folder."""
    code = (
        "import sys; from sentence_transformers import SentenceTransformer; "
        "from sentence_transformers.backend import export_dynamic_quantized_onnx_model as q; "
        "m = SentenceTransformer(sys.argv[1], device='cpu', backend='onnx'); m.save(sys.argv[2]); "
        "q(m, sys.argv[3], sys.argv[2])"
    )
    out = work / "st-onnx"
    if not (out / "onnx" / f"model_qint8_{args.st_qconfig}.onnx").is_file():
        from unirank.models.backbone import packaged_model_dir

        env = {**os.environ, "PYTHONPATH": args.st_onnx_path}
        subprocess.run(
            [sys.executable, "-c", code, str(packaged_model_dir()), str(out), args.st_qconfig],
            check=True,
            env=env,
            capture_output=True,
        )
    return str(out), f"onnx/model_qint8_{args.st_qconfig}.onnx"


def export_both(model, work: Path, name: str) -> dict[str, str]:
    from unirank.runtime.onnx_export import export_onnx

    return {
        "fp32": str(export_onnx(model, work / f"{name}-onnx-fp32")),
        "int8": str(export_onnx(model, work / f"{name}-onnx-int8", quantize="int8")),
    }


def seeded(kind: str, work: Path, **settings) -> str:
    """MiniLM with a head drawn from seed 0, saved (so every process scores with the same weights)."""
    import torch

    from unirank.models.base import model_class

    torch.manual_seed(0)
    folder = work / f"{kind}-minilm-seed0"
    model_class(kind).from_pretrained(None, **settings).save(folder)
    return str(folder)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--parts", default="encode,rerank,response")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--n", type=int, default=500, help="encode: texts")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument(
        "--st-onnx-path", default=None, help="folder with sentence-transformers + optimum-onnx importable (see above)"
    )
    p.add_argument(
        "--st-qconfig",
        default="avx512_vnni",
        help="sentence-transformers int8 config: arm64 | avx2 | avx512 | avx512_vnni",
    )
    p.add_argument(
        "--cross-model", default=None, help="rerank: saved cross-encoder (default: MiniLM + seeded random head)"
    )
    p.add_argument("--queries", type=int, default=20, help="rerank: first N SciFact test queries")
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--chunk-size", type=int, default=50, help="rerank: pairs per forward pass")
    p.add_argument(
        "--uni-model", default=None, help="response: saved Uni-Encoder (default: MiniLM + seeded random head)"
    )
    p.add_argument("--contexts", type=int, default=200, help="response: first N MuTual dev contexts")
    p.add_argument("--data", default=SCIFACT)
    p.add_argument("--mutual", default=MUTUAL)
    p.add_argument("--work", default="bench/out/onnx_speed")
    p.add_argument("--markdown", default=None)
    args = p.parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        print("RESULT " + json.dumps(WORKERS[job["part"]](job)), flush=True)
        return

    import numpy as np
    from _record import host, record, section

    work = Path(args.work).resolve()
    (work / "emb").mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    body: list[str] = []
    base = {"threads": args.threads}

    if "encode" in parts:
        from unirank.models.backbone import packaged_model_dir
        from unirank.models.bi import BiEncoder

        onnx = export_both(BiEncoder.from_pretrained(None, max_length=args.max_length), work, "bi")
        systems = ENCODE_SYSTEMS[:4]
        job = {
            **base,
            "part": "encode",
            "data": args.data,
            "n": args.n,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "onnx": onnx,
            "model_dir": str(packaged_model_dir()),
            "tmp": str(work / "emb"),
        }
        if args.st_onnx_path:
            job["st_onnx_dir"], job["st_int8_file"] = prepare_st_onnx(args, work)
            systems = ENCODE_SYSTEMS
        res = rounds(
            systems,
            args.rounds,
            lambda s: spawn({**job, "system": s}, args.st_onnx_path if s.startswith("st-onnx") else None),
        )
        ref = np.load(work / "emb" / "unirank-torch.npy")
        torch_rate = statistics.median(r["rate"] for r in res["unirank-torch"])
        body += [
            f"### Corpus encoding: {args.n} SciFact abstracts, batch {args.batch_size}, {args.max_length} tokens, "
            "all-MiniLM-L6-v2, "
            f"{args.threads} threads, {args.rounds} rounds alternating order",
            "",
            "| system | texts/s per round | median | x unirank PyTorch | max abs diff to unirank PyTorch | libraries |",
            "|---|---|---|---|---|---|",
        ]
        for s in systems:
            rates = [r["rate"] for r in res[s]]
            diff = float(np.abs(np.load(work / "emb" / f"{s}.npy") - ref).max())
            body.append(
                f"| {s} | {' / '.join(f'{x:.1f}' for x in rates)} | {statistics.median(rates):.1f} | "
                f"{statistics.median(rates) / torch_rate:.2f} | {diff:.1e} | {res[s][0]['versions']} |"
            )
        body.append("")

    for part, kind, model_arg, ctx in (
        ("rerank", "cross", args.cross_model, None),
        ("response", "uni", args.uni_model, None),
    ):
        if part not in parts:
            continue
        folder = model_arg or seeded(kind, work, **({"max_candidate_length": 128} if kind == "cross" else {}))
        from unirank.models.base import load_ranker

        onnx = export_both(load_ranker(folder, kind, device="cpu", backend="torch"), work, kind)
        job = {**base, "part": part, "model": folder, "onnx": onnx}
        if part == "rerank":
            run_file = work / "bm25_test.trec"
            if not run_file.is_file():
                from unirank.data.trec import write_run
                from unirank.eval.config import EvalConfig
                from unirank.eval.evaluate import run_eval

                r = run_eval(
                    EvalConfig(
                        data=args.data, split="test", k=args.depth, limit_queries=args.queries, measures=["ndcg@10"]
                    ),
                    quiet=True,
                )
                write_run(r.run, run_file)
            job.update(
                data=args.data, depth=args.depth, queries=args.queries, chunk_size=args.chunk_size, run=str(run_file)
            )
            unit, quality = "pairs/s", "ndcg@10"
            title = (
                f"### Cross-encoder reranking: BM25 top-{args.depth} of the first {args.queries} SciFact test queries, "
                f"{args.chunk_size} pairs per pass, model `{model_arg or 'MiniLM + seeded random head (speed only)'}`"
            )
        else:
            job.update(data=args.mutual, contexts=args.contexts, batch_size=16)
            unit, quality = "candidates/s", "r@1"
            title = (
                f"### Uni-Encoder response scoring: first {args.contexts} MuTual dev contexts (4 candidates each), "
                f"model `{model_arg or 'MiniLM + seeded random head (speed only; R@1 at chance)'}`"
            )
        res = rounds(RANK_SYSTEMS, args.rounds, lambda s: spawn({**job, "system": s}))
        torch_rate = statistics.median(r["rate"] for r in res["torch"])
        body += [title, "", f"| backend | {unit} per round | median | x PyTorch | {quality} |", "|---|---|---|---|---|"]
        for s in RANK_SYSTEMS:
            rates = [r["rate"] for r in res[s]]
            body.append(
                f"| {s} | {' / '.join(f'{x:.1f}' for x in rates)} | {statistics.median(rates):.1f} | "
                f"{statistics.median(rates) / torch_rate:.2f} | {res[s][0][quality]:.4f} |"
            )
        body.append("")

    load = os.getloadavg()
    body.append(
        f"1-minute load average at the end: {load[0]:.2f} (2 CPU cores shared with other jobs; heavy jobs serialised "
        "by a lock)."
    )
    text = section(
        "PyTorch vs ONNX Runtime on the CPU (bench/onnx_speed.py)", "onnx_speed.py", host("cpu", args.threads), body
    )
    print(text)
    record(text, args.markdown)


if __name__ == "__main__":
    main()
