"""Which ONNX Runtime session settings make unirank's ONNX corpus encoding faster on this CPU.

The cheap knobs of issue 20, each variant in its own process, rounds alternating the order,
on the same texts / batch / length as ``bench/onnx_speed.py --parts encode`` (the first
``--n`` SciFact abstracts, packaged all-MiniLM-L6-v2, exports in ``--work``):

* ``threads`` (intra-op threads; ``0``: ONNX Runtime's default),
* ``spin`` (``session.intra_op.allow_spinning``: 1 = ONNX Runtime's default, worker threads
  busy-wait between ops; 0 = they sleep),
* ``opt`` (graph optimisation level at session creation: basic | extended | all = default),
* ``graph``: ``fp32`` | ``int8`` (unirank's export, ``--quantize int8``), with optional
  suffixes ``-fused`` (ONNX Runtime's offline transformer fusions, ``optimize=true``),
  ``-eager`` (the backbone traced with eager attention instead of SDPA) and, for int8,
  ``-allmm`` (``quantize_dynamic`` with ``MatMulConstBOnly=False``: the attention's
  activation x activation MatMuls quantised too, as optimum's quantizer - and so
  sentence-transformers' int8 export - does), e.g. ``int8-eager-allmm``.

A variant is ``graph/threads/spin/opt``, e.g. ``fp32/2/1/all`` (the default unirank uses with
``--backend onnx:threads=2``). Each process opens the export with
:func:`unirank.runtime.onnx_models.load_onnx_ranker`, replaces its session by one built with
the variant's options, warms up on one batch and times ``encode``. Prints a table and appends
it to bench/RESULTS.md (``--markdown FILE`` writes it there instead).

    flock /tmp/unirank-cpu.lock .venv/bin/python bench/onnx_session_options.py --rounds 2
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

DEFAULT_VARIANTS = (
    "fp32/2/1/all,fp32/2/0/all,fp32/0/1/all,fp32/2/1/basic,fp32-fused/2/1/all,fp32-eager/2/1/all,"
    "int8/2/1/all,int8/2/0/all,int8-fused/2/1/all,int8-eager/2/1/all,int8-allmm/2/1/all,int8-eager-allmm/2/1/all"
)


def worker(job: dict) -> dict:
    import numpy as np
    import onnxruntime as ort

    from unirank.data.beir import load_corpus
    from unirank.runtime.onnx_models import load_onnx_ranker

    graph, threads, spin, opt = job["variant"].split("/")
    texts = [d.full_text for d in list(load_corpus(Path(job["data"]) / "corpus.jsonl").values())[: job["n"]]]
    model = load_onnx_ranker(job["folders"][graph], threads=int(threads) or None, max_length=job["max_length"])
    g = model.graphs["encoder"]
    so = ort.SessionOptions()
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if int(threads):
        so.intra_op_num_threads = int(threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt]
    g.session = ort.InferenceSession(str(g.path), so, providers=["CPUExecutionProvider"])
    bs = job["batch_size"]
    model.encode(texts[:bs], batch_size=bs, show_progress=False)
    t0 = time.perf_counter()
    out = model.encode(texts, batch_size=bs, show_progress=False)
    sec = time.perf_counter() - t0
    np.save(
        Path(job["work"]) / "emb" / f"opt-{job['variant'].replace('/', '_')}.npy", np.asarray(out, dtype=np.float32)
    )
    return {"rate": len(texts) / sec, "seconds": sec, "ort": ort.__version__}


def export_variant(graph: str, work: Path, max_length: int) -> Path:
    """The export folder of a graph variant name (see the module docstring)."""
    from unirank.models.bi import BiEncoder
    from unirank.runtime.onnx_export import export_onnx

    base, *flags = graph.split("-")
    unknown = set(flags) - {"fused", "eager", "allmm"}
    if base not in ("fp32", "int8") or unknown or ("allmm" in flags and base != "int8"):
        raise SystemExit(f"--variants: unknown graph {graph!r} (fp32|int8 with -fused, -eager, int8 only: -allmm)")
    kw = {"attn_implementation": "eager"} if "eager" in flags else {}
    model = BiEncoder.from_pretrained(None, max_length=max_length, **kw)
    out = work / f"bi-onnx-{graph}"
    if "allmm" not in flags:
        return export_onnx(model, out, quantize="int8" if base == "int8" else None, optimize="fused" in flags)
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = export_onnx(model, out, optimize="fused" in flags)
    path = folder / "encoder.onnx"
    tmp = path.with_name("encoder.int8.onnx")
    quantize_dynamic(
        str(path),
        str(tmp),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": TensorProto.FLOAT, "MatMulConstBOnly": False},
    )
    os.replace(tmp, path)
    return folder


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated graph/threads/spin/opt")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--data", default="../shared/data/scifact")
    p.add_argument("--work", default="bench/out/onnx_speed")
    p.add_argument("--markdown", default=None)
    args = p.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return

    import numpy as np
    from _record import host, record, section

    work = Path(args.work).resolve()
    (work / "emb").mkdir(parents=True, exist_ok=True)
    variants = args.variants.split(",")
    folders = {
        graph: str(export_variant(graph, work, args.max_length))
        for graph in sorted({v.split("/")[0] for v in variants})
    }
    job = {
        "data": args.data,
        "n": args.n,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "folders": folders,
        "work": str(work),
    }
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")])
        ),
        "TOKENIZERS_PARALLELISM": "false",
    }
    res: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants if r % 2 == 0 else list(reversed(variants)):
            pr = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps({**job, "variant": v})],
                capture_output=True,
                text=True,
                env=env,
            )
            lines = [x for x in pr.stdout.splitlines() if x.startswith("RESULT ")]
            if pr.returncode != 0 or not lines:
                raise RuntimeError(f"variant {v} failed ({pr.returncode}):\n{pr.stderr[-3000:]}")
            res[v].append(json.loads(lines[-1][7:]))
            print(f"round {r + 1} {v}: {res[v][-1]['rate']:.1f} texts/s", flush=True)
    base = statistics.median(x["rate"] for x in res[variants[0]])
    torch_ref = work / "emb" / "unirank-torch.npy"
    ref_emb = np.load(torch_ref) if torch_ref.is_file() else None
    body = [
        f"Encoding {args.n} SciFact abstracts, batch {args.batch_size}, {args.max_length} tokens, all-MiniLM-L6-v2 "
        "exported by unirank; "
        f"variant = graph / intra-op threads (0: ONNX Runtime's default) / allow_spinning / graph optimisation level; "
        f"{args.rounds} rounds alternating order, one process per variant; onnxruntime {res[variants[0]][0]['ort']}.",
        "",
        f"| variant | texts/s per round | median | x {variants[0]} | max abs diff to unirank PyTorch |",
        "|---|---|---|---|---|",
    ]
    for v in variants:
        rates = [x["rate"] for x in res[v]]
        diff = "-"
        if ref_emb is not None:
            diff = (
                f"{float(np.abs(np.load(work / 'emb' / f'opt-{v.replace(chr(47), chr(95))}.npy') - ref_emb).max()):.1e}"
            )
        body.append(
            f"| {v} | {' / '.join(f'{x:.1f}' for x in rates)} | {statistics.median(rates):.1f} | "
            f"{statistics.median(rates) / base:.2f} | {diff} |"
        )
    body.append("")
    body.append(
        f"1-minute load average at the end: {os.getloadavg()[0]:.2f} (2 CPU cores shared with other jobs; heavy jobs "
        "serialised by a lock)."
    )
    text = section(
        "ONNX Runtime session settings for corpus encoding (bench/onnx_session_options.py)",
        "onnx_session_options.py",
        "2 shared CPU cores; " + host("cpu", "each variant's"),
        body,
    )
    print(text)
    record(text, args.markdown)


if __name__ == "__main__":
    main()
