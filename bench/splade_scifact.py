"""SPLADE on BEIR SciFact test (issue 15's must-show): quality, sparsity, index size, latency.

    # 1. the packaged SPLADE-tiny zero-shot, side by side with sentence-transformers' SparseEncoder
    .venv/bin/python bench/splade_scifact.py --name "SPLADE-tiny zero-shot" --model splade-tiny --st
    # 2-5. a model trained by `unirank train` (its exported folder)
    .venv/bin/python bench/splade_scifact.py --name "SPLADE-tiny + InfoNCE, BM25 negatives" --model runs/x/model
    # 6. fused (RRF) with a dense bi-encoder (a fine-tuned folder, or minilm for the zero-shot one)
    .venv/bin/python bench/splade_scifact.py --name "... + dense" --model runs/x/model --fuse-dense minilm

For each system: nDCG@10 and Recall@100 of exact search; mean non-zeros per query and per
document; the exact index's size (CSR values + ids + row pointers) and Seismic's index file;
corpus encoding time; query latency (encoding, exact search, Seismic search, per query) and
Seismic's Recall@100 against exact search (the share of the exact top 100 it returns) and its
own nDCG@10. ``--st`` also encodes corpus and queries with sentence-transformers'
``SparseEncoder`` on the same folder (same exact search), timed in the same process right
after unirank. Appends a section to bench/RESULTS.md (``--markdown FILE`` writes it there
instead), the numbers to ``bench/out/splade/<slug>.json`` and the top-100 runs (exact SPLADE,
Seismic, and with ``--fuse-dense`` dense and fused) to ``bench/out/splade/<slug>/*.trec`` for
``unirank compare``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _metrics(ds, qids, doc_ids, scores, indices):
    from unirank.eval.evaluate import score_run
    from unirank.index.base import hits_to_run

    run = hits_to_run(qids, doc_ids, scores, indices)
    means, _ = score_run({q: ds.qrels[q] for q in qids}, run, ["ndcg@10", "recall@100"])
    return {"ndcg@10": round(means["ndcg@10"], 4), "recall@100": round(means["recall@100"], 4)}


def _write(folder: Path, name: str, qids, doc_ids, scores, indices) -> None:
    """``folder/name.trec``: a TREC run that ``unirank compare`` reads (significance between rows)."""
    from unirank.data.trec import write_run
    from unirank.index.base import hits_to_run

    write_run(hits_to_run(qids, doc_ids, scores, indices), folder / f"{name}.trec")


def _nnz(m) -> float:
    import numpy as np

    return round(float(np.diff(m.indptr).mean()), 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/scifact")
    ap.add_argument("--model", default="splade-tiny", help="SPLADE folder / name for Splade.from_pretrained")
    ap.add_argument("--name", required=True, help="row label")
    ap.add_argument("--settings", default="{}", help="JSON of Splade.from_pretrained settings")
    ap.add_argument(
        "--st", action="store_true", help="also time sentence-transformers' SparseEncoder on the same folder"
    )
    ap.add_argument(
        "--fuse-dense", default=None, help="RRF with this bi-encoder's exact dense search (folder, or minilm)"
    )
    ap.add_argument(
        "--seismic", default='{"n_postings": 1000, "query_cut": 20, "heap_factor": 0.8}', help="JSON Seismic parameters"
    )
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from _record import host, record, section

    from unirank.data.datasets import load_dataset
    from unirank.index.learned_sparse import SeismicIndex, SparseExactIndex
    from unirank.index.shards import recall_at_k
    from unirank.models.splade import Splade

    ds = load_dataset(args.data, split="test")
    doc_ids = list(ds.corpus)
    texts = [ds.corpus[d].full_text for d in doc_ids]
    qids = list(ds.qrels)
    queries = [ds.queries[q].text for q in qids]
    model = Splade.from_pretrained(args.model, **json.loads(args.settings))
    out: dict = {
        "name": args.name,
        "model": args.model,
        "settings": model.settings,
        "docs": len(doc_ids),
        "queries": len(qids),
    }

    t = time.perf_counter()
    docs = model.encode_docs(texts, batch_size=args.batch_size)
    out["encode_corpus_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    q = model.encode_queries(queries, batch_size=args.batch_size)
    out["encode_query_ms"] = round(1000 * (time.perf_counter() - t) / len(qids), 2)
    exact = SparseExactIndex()
    exact.add(docs, doc_ids)
    t = time.perf_counter()
    es, ei = exact.search(q, 100)
    out["exact_search_ms"] = round(1000 * (time.perf_counter() - t) / len(qids), 3)
    out.update(_metrics(ds, qids, doc_ids, es, ei))
    slug = re.sub(r"[^a-z0-9]+", "-", args.name.lower()).strip("-")
    runs = HERE / "out" / "splade" / slug
    _write(runs, "splade", qids, doc_ids, es, ei)
    out.update({"query_nnz": _nnz(q), "doc_nnz": _nnz(docs), "exact_index_mb": round(exact.nbytes / 2**20, 2)})

    seis_params = json.loads(args.seismic)
    search = {k: seis_params.pop(k) for k in ("query_cut", "heap_factor") if k in seis_params}
    seis = SeismicIndex(seis_params, search, num_threads=args.threads)
    t = time.perf_counter()
    seis.add(docs, doc_ids)
    out["seismic_build_s"] = round(time.perf_counter() - t, 2)
    seis.search(q[:10], 100)  # warm
    t = time.perf_counter()
    ss, si = seis.search(q, 100)
    out["seismic_search_ms"] = round(1000 * (time.perf_counter() - t) / len(qids), 3)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        seis.save(tmp)
        out["seismic_index_mb"] = round(seis.nbytes / 2**20, 2)
    _write(runs, "seismic", qids, doc_ids, ss, si)
    out["seismic_recall@100_vs_exact"] = round(recall_at_k(ei, si, 100), 4)
    out["seismic"] = {**_metrics(ds, qids, doc_ids, ss, si), "params": {**seis.build_params, **seis.search_params}}

    if args.st:
        from sentence_transformers import SparseEncoder

        from unirank.models.splade import resolve_splade_path

        st = SparseEncoder(resolve_splade_path(args.model), device="cpu")
        t = time.perf_counter()
        sd = st.encode(texts, batch_size=args.batch_size, convert_to_sparse_tensor=True)
        st_corpus = round(time.perf_counter() - t, 1)
        sq = st.encode(queries, batch_size=args.batch_size, convert_to_sparse_tensor=True)

        def to_csr(x):
            import scipy.sparse as sp

            x = x.coalesce().cpu()
            i, v = x.indices().numpy(), x.values().numpy()
            return sp.csr_matrix((v, (i[0], i[1])), shape=tuple(x.shape), dtype=np.float32)

        sd, sq = to_csr(sd), to_csr(sq)
        st_ix = SparseExactIndex()
        st_ix.add(sd, doc_ids)
        s2, i2 = st_ix.search(sq, 100)
        out["sentence_transformers"] = {
            **_metrics(ds, qids, doc_ids, s2, i2),
            "encode_corpus_s": st_corpus,
            "query_nnz": _nnz(sq),
            "doc_nnz": _nnz(sd),
            "max_abs_diff_docs": float(abs(sd - docs).max()) if sd.shape == docs.shape else None,
        }

    if args.fuse_dense:
        from unirank.index.retrievers import DenseRetriever, rrf_fuse

        dense = DenseRetriever(args.fuse_dense, batch_size=64, show_progress=False)
        t = time.perf_counter()
        dense.build(doc_ids, texts)
        ds_, di = dense.search(queries, 100)
        dense_s = round(time.perf_counter() - t, 1)
        fs, fi = rrf_fuse([(es, ei), (ds_, di)], len(doc_ids), 100, 60.0)
        _write(runs, "dense", qids, doc_ids, ds_, di)
        _write(runs, "fused", qids, doc_ids, fs, fi)
        out["dense"] = {
            **_metrics(ds, qids, doc_ids, ds_, di),
            "model": args.fuse_dense,
            "encode_and_search_s": dense_s,
        }
        out["fused_with_dense"] = _metrics(ds, qids, doc_ids, fs, fi)

    folder = HERE / "out" / "splade"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{slug}.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))

    body = [
        f"SciFact test ({len(qids)} queries, {len(doc_ids)} documents), model `{args.model}`, settings "
        f"`{json.dumps(model.settings)}`, encoding batch {args.batch_size}.",
        "",
        "| system | nDCG@10 | R@100 | nnz/query | nnz/doc | index MB | corpus encode s | query enc ms | exact ms/q | "
        "seismic ms/q | seismic R@100 vs exact | seismic nDCG@10 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| unirank {args.name} | {out['ndcg@10']:.4f} | {out['recall@100']:.4f} | {out['query_nnz']} | "
        f"{out['doc_nnz']} | "
        f"{out['exact_index_mb']} (seismic {out['seismic_index_mb']}) | {out['encode_corpus_s']} | "
        f"{out['encode_query_ms']} | "
        f"{out['exact_search_ms']} | {out['seismic_search_ms']} | {out['seismic_recall@100_vs_exact']} | "
        f"{out['seismic']['ndcg@10']:.4f} |",
    ]
    if "sentence_transformers" in out:
        s = out["sentence_transformers"]
        body.append(
            f"| sentence-transformers SparseEncoder, same folder | {s['ndcg@10']:.4f} | {s['recall@100']:.4f} | "
            f"{s['query_nnz']} | "
            f"{s['doc_nnz']} | - | {s['encode_corpus_s']} | - | - | - | - | - |"
        )
    if "fused_with_dense" in out:
        body.append(
            f"| dense `{args.fuse_dense}` alone | {out['dense']['ndcg@10']:.4f} | {out['dense']['recall@100']:.4f} | "
            "- | - | - | - | - | - | - | - | - |"
        )
        body.append(
            f"| RRF(unirank {args.name}, dense) | {out['fused_with_dense']['ndcg@10']:.4f} | "
            f"{out['fused_with_dense']['recall@100']:.4f} "
            "| - | - | - | - | - | - | - | - | - |"
        )
    body.append(f"\nSeismic parameters: `{json.dumps(out['seismic']['params'])}`, build {out['seismic_build_s']} s.")
    if "sentence_transformers" in out:
        body.append(
            "Largest absolute difference between the two document matrices: "
            f"{out['sentence_transformers']['max_abs_diff_docs']:.2e}. "
            "unirank encoded first, then sentence-transformers, in one process."
        )
    record(
        section(
            f"SPLADE on SciFact: {args.name}",
            "splade_scifact.py",
            f"2 shared CPU cores; {host(threads=args.threads)}",
            body,
        ),
        args.markdown,
    )


if __name__ == "__main__":
    main()
