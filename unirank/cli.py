"""``unirank`` command line: thin shells over the library's functions and configs.

Every command takes flags for the common settings, ``--config FILE.yaml`` for a full config
and ``--set key=value`` (repeatable, dotted keys) for anything else. Errors meant for
people (bad data, bad config) print one line and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, List, Optional, TypeVar

import typer

from .errors import ConfigError, user_error

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, evaluate and serve neural rankers.",
)

T = TypeVar("T")


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as e:  # noqa: BLE001 - classified: only user errors become one line
        msg = user_error(e)
        if msg is None:
            raise
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(2) from None


def _model_key(section: str, name: str | None) -> str:
    """Which config key ``--model`` sets: the SPLADE model for ``splade``, else the bi-encoder."""
    return f"{section}.splade.model" if name == "splade" else f"{section}.dense.model"


def _flags(**kw: object) -> list[str]:
    """CLI flags that were given, as key=value overrides (None = not given)."""
    return [f"{k}={v}" for k, v in kw.items() if v is not None]


@app.command("eval")
def eval_cmd(
    data: Optional[str] = typer.Option(None, help="BEIR folder or built-in name (stdlib-codesearch)"),
    split: Optional[str] = typer.Option(None, help="qrels split, e.g. test"),
    retriever: Optional[str] = typer.Option(
        None,
        help="bm25 | dense | hybrid | prebuilt (needs --set retriever.dense.store=STORE) | "
        "splade | fusion (RRF of retriever.fuse, default [splade, bm25])",
    ),
    model: Optional[str] = typer.Option(
        None,
        help="bi-encoder for dense/hybrid: folder, hub name; default packaged all-MiniLM-L6-v2 "
        "(with --retriever splade: the SPLADE model, default the packaged splade-tiny)",
    ),
    k: Optional[int] = typer.Option(None, help="documents retrieved per query"),
    index: Optional[str] = typer.Option(None, help="dense index: flat (exact) | ivf"),
    batch_size: Optional[int] = typer.Option(None),
    device: Optional[str] = typer.Option(None, help="cpu | cuda (default: cuda when present)"),
    dtype: Optional[str] = typer.Option(None, help="fp16 | bf16 autocast for encoding"),
    backend: Optional[str] = typer.Option(
        None,
        help="inference backend: torch (default) | onnx[:quantize=int8,threads=N] (ONNX Runtime; needs unirank[onnx])",
    ),
    limit_queries: Optional[int] = typer.Option(None, help="evaluate the first N queries (examples) only"),
    task: Optional[str] = typer.Option(
        None,
        help=(
            "retrieval (default) | response (response selection: R_n@k, MRR) | "
            "budget (CUR vs reranking at cross-encoder budgets)"
        ),
    ),
    reranker: Optional[str] = typer.Option(None, help="rerank the first stage with this kind: cross | uni | poly | bi"),
    reranker_model: Optional[str] = typer.Option(None, help="reranker folder (saved unirank model) or name"),
    rerank_depth: Optional[int] = typer.Option(None, help="first-stage documents reranked per query"),
    first_stage_run: Optional[Path] = typer.Option(None, help="rerank this TREC run instead of running the retriever"),
    kind: Optional[str] = typer.Option(None, help="--task response: model kind (bi | poly | cross | uni)"),
    response_model: Optional[str] = typer.Option(None, help="--task response: model folder or name"),
    data_format: Optional[str] = typer.Option(None, "--format", help="--task response: mutual | tsv | jsonl | task"),
    out: Optional[Path] = typer.Option(
        None,
        help="output folder: run.trec, metrics.json, per_query.json, config.json, "
        "report.html (--task response: metrics.json, scores.jsonl, config.json)",
    ),
    config: Optional[Path] = typer.Option(None, help="YAML EvalConfig"),
    set_: List[str] = typer.Option([], "--set", help="override any config key: key.sub=value"),
) -> None:
    """Evaluate retrieval (optionally reranked) on BEIR-format data, or response selection."""
    from .config import load_config
    from .eval.config import EvalConfig
    from .tasks import run_eval_task

    def go() -> None:
        overrides = _flags(
            data=data,
            split=split,
            task=task,
            **{
                "retriever.name": retriever,
                _model_key("retriever", retriever): model,
                "k": k,
                "retriever.dense.index_kind": index,
                "retriever.dense.batch_size": batch_size,
                "retriever.dense.device": device,
                "retriever.dense.dtype": dtype,
                "limit_queries": limit_queries,
                "out": out,
                "rerank.kind": reranker,
                "rerank.model": reranker_model,
                "rerank.depth": rerank_depth,
                "rerank.first_stage_run": first_stage_run,
                "response.kind": kind,
                "response.model": response_model,
                "response.format": data_format,
                **(
                    {"retriever.dense.backend": backend, "rerank.backend": backend, "response.backend": backend}
                    if backend
                    else {}
                ),
            },
        )
        cfg = load_config(EvalConfig, config, overrides + list(set_))
        run_eval_task(cfg)
        if cfg.out:
            typer.echo(f"wrote {cfg.out}")

    _guard(go)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="YAML TrainConfig (see examples/)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint in the output folder"),
) -> None:
    """Train any ranker kind: unirank train CONFIG.yaml [--key value ...] [--resume].

    Extra ``--key value`` / ``key=value`` arguments override config keys (dotted for nested).
    Under ``torchrun --nproc_per_node N -m unirank train ...`` it trains data-parallel.
    """
    from .train import train_main

    _guard(lambda: train_main(str(config), list(ctx.args), resume=resume))


@app.command()
def mine(
    data: Optional[str] = typer.Option(None, help="BEIR folder or built-in name"),
    split: Optional[str] = typer.Option(None, help="qrels split whose queries are mined (default train)"),
    miner: Optional[str] = typer.Option(
        None, help="bm25 | dense | hybrid | prebuilt (needs --set miner.dense.store=STORE) | splade"
    ),
    model: Optional[str] = typer.Option(
        None, help="bi-encoder of the dense/hybrid miner (with --miner splade: the SPLADE model)"
    ),
    filter_: Optional[List[str]] = typer.Option(
        None, "--filter", help="NAME[:k=v,...], repeatable, in order; 'none' = only drop positives"
    ),
    sampler: Optional[str] = typer.Option(None, help="NAME[:k=v,...]: top | range | random | simans | mixed"),
    negatives: Optional[int] = typer.Option(None, help="negatives per query"),
    depth: Optional[int] = typer.Option(None, help="candidates retrieved per query"),
    teacher: Optional[str] = typer.Option(None, help="rescoring model kind (cross | uni | bi | poly)"),
    teacher_model: Optional[str] = typer.Option(None, help="rescoring model folder or name"),
    backend: Optional[str] = typer.Option(
        None,
        help="inference backend: torch (default) | onnx[:quantize=int8,threads=N] (ONNX Runtime; needs unirank[onnx])",
    ),
    format_: Optional[str] = typer.Option(
        None, "--format", help="also write train.<format>.jsonl: flag | st-triplet | st-ntuple"
    ),
    seed: Optional[int] = typer.Option(None),
    out: Optional[Path] = typer.Option(
        None,
        help="output folder: train.jsonl, mine.json, audit.html, audit.jsonl, timings.json (+ train.<format>.jsonl)",
    ),
    config: Optional[Path] = typer.Option(None, help="YAML MineConfig"),
    set_: List[str] = typer.Option([], "--set", help="override any config key: key.sub=value"),
) -> None:
    """Mine hard negatives: first stage -> (teacher rescoring) -> false-negative filters -> sampler."""
    from .negatives.pipeline import build_mine_config, run_mine

    def go() -> None:
        overrides = _flags(
            data=data,
            split=split,
            negatives=negatives,
            depth=depth,
            seed=seed,
            out=out,
            format=format_,
            **{
                "miner.name": miner,
                _model_key("miner", miner): model,
                "teacher.kind": teacher,
                "teacher.model": teacher_model,
                "miner.dense.backend": backend,
                "teacher.backend": backend,
            },
        )
        cfg = build_mine_config(config, overrides + list(set_), filters=filter_ or None, sampler=sampler)
        manifest = run_mine(cfg)
        files = [
            "train.jsonl",
            *([f"train.{cfg.format}.jsonl"] if cfg.format != "unirank" else []),
            "mine.json",
            "audit.html",
            "audit.jsonl",
            "timings.json",
        ]
        typer.echo(
            f"wrote {cfg.out}: {', '.join(files)} ({manifest.get('counts', {}).get('queries_written', '?')} queries)"
        )

    _guard(go)


@app.command()
def encode(
    data: str = typer.Option(..., help="BEIR folder or built-in name whose corpus is encoded"),
    out: Path = typer.Option(..., help="embedding store folder (shared by all shards)"),
    model: Optional[str] = typer.Option(
        None,
        help="bi-encoder folder or name (default packaged all-MiniLM-L6-v2; "
        "--kind splade: SPLADE model, default the packaged splade-tiny)",
    ),
    kind: str = typer.Option(
        "bi", help="bi (dense embeddings) | splade (sparse vectors, for `unirank index --kind seismic|exact`)"
    ),
    shard: Optional[str] = typer.Option(
        None, help="i/n: encode shard i of n (default: torchrun rank/world size, else 0/1)"
    ),
    batch_size: int = typer.Option(64),
    chunk_size: int = typer.Option(8192, help="documents per chunk file (the unit of resume)"),
    dtype: str = typer.Option("float32", help="stored precision: float32 | float16"),
    device: Optional[str] = typer.Option(None),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="skip chunks already written"),
    backend: str = typer.Option(
        "torch", help="inference backend: torch | onnx[:quantize=int8,threads=N] (ONNX Runtime; needs unirank[onnx])"
    ),
) -> None:
    """Encode a corpus (or one shard of it) into a resumable embedding store."""
    from .index.shards import check_store_dir, encode_corpus_shard, parse_shard

    def go() -> None:
        from .models.base import MODELS, DualEncoder, import_model_kinds, load_ranker

        for flag, value in (("--chunk-size", chunk_size), ("--batch-size", batch_size)):
            if value < 1:
                raise ConfigError(f"{flag}: expected an integer >= 1, got {value}")
        import_model_kinds()
        cls = MODELS.get(kind)
        if not issubclass(cls, DualEncoder):
            raise ConfigError(
                f"--kind {kind}: encode needs a model that embeds documents on their own "
                f"({', '.join(k for k in MODELS.names() if issubclass(MODELS.get(k), DualEncoder))})"
            )
        check_store_dir(out)  # before the model loads and the corpus is encoded
        encoder = load_ranker(model or cls.default_model, kind, device="cpu", backend=backend)
        kw = dict(
            shard=parse_shard(shard) if shard else None,
            out_dir=out,
            batch_size=batch_size,
            chunk_size=chunk_size,
            resume=resume,
            device=device,
        )
        if encoder.sparse_vectors:  # a sparse model writes the sparse store layout
            from .index.learned_sparse import encode_sparse_shard

            folder = encode_sparse_shard(encoder, data, **kw)
        else:
            folder = encode_corpus_shard(encoder, data, dtype=dtype, **kw)
        typer.echo(f"wrote {folder}")

    _guard(go)


@app.command("index")
def index_cmd(
    store: Optional[Path] = typer.Option(
        None, help="embedding store written by `unirank encode` (not with --kind cur)"
    ),
    out: Path = typer.Option(..., help="folder for one FAISS index per shard (--kind cur: the CUR index)"),
    kind: str = typer.Option(
        "ivfpq",
        help="flat (exact) | ivfpq | hnsw; for a sparse store (encode --kind splade): seismic | exact; "
        "cur: cross-encoder scores of anchor queries x documents (--data, --reranker-model, --anchor-queries)",
    ),
    train_sample: int = typer.Option(100_000, help="vectors sampled to train ivfpq"),
    seed: int = typer.Option(0),
    set_: List[str] = typer.Option(
        [], "--set", help="seismic build parameters: n_postings=..., summary_energy=..., ..."
    ),
    data: Optional[str] = typer.Option(None, help="--kind cur: BEIR folder or built-in name whose corpus is indexed"),
    reranker_model: Optional[str] = typer.Option(
        None, help="--kind cur: the cross-encoder (saved unirank folder or checkpoint)"
    ),
    anchor_queries: Optional[str] = typer.Option(
        None, help="--kind cur: a split of --data (e.g. train) or a queries .jsonl / .tsv file"
    ),
    max_anchor_queries: Optional[int] = typer.Option(None, help="--kind cur: keep the first N anchor queries"),
    dtype: str = typer.Option("float32", help="--kind cur: stored precision: float32 | float16"),
    batch_size: int = typer.Option(16, help="--kind cur: anchor queries per cross-encoder call"),
    chunk_size: int = typer.Option(512, help="--kind cur: documents per chunk file (the unit of resume)"),
    shard: Optional[str] = typer.Option(None, help="--kind cur: i/n: score shard i of n of the documents"),
    device: Optional[str] = typer.Option(None, help="--kind cur: cpu | cuda"),
) -> None:
    """Build FAISS indexes (exact or compressed) from an embedding store; search them with
    ``unirank eval --retriever prebuilt --set retriever.dense.store=STORE --set retriever.dense.index_dir=OUT``.
    ``--kind cur`` builds a CUR index instead (``unirank eval --retriever cur --set retriever.cur.index=OUT``)."""
    from .config import check_out_dir
    from .index.shards import INDEX_MARKER, ShardedIndex

    def go() -> None:
        if kind == "cur":  # not a FAISS kind: the cross-encoder's score matrix (unirank.index.cur_store)
            from .index.cur_store import build_cur_index_cli

            typer.echo(
                build_cur_index_cli(
                    data=data,
                    model=reranker_model,
                    anchor_queries=anchor_queries,
                    out=out,
                    max_anchor_queries=max_anchor_queries,
                    dtype=dtype,
                    batch_size=batch_size,
                    chunk_size=chunk_size,
                    shard=shard,
                    device=device,
                )
            )
            return
        if store is None:
            raise ConfigError(f"--store is required for --kind {kind} (an embedding store written by `unirank encode`)")
        from .index.learned_sparse import SparseShardedIndex, is_sparse_store

        if is_sparse_store(store):  # resumable: shards whose index is saved are skipped
            import yaml

            check_out_dir(out, "--out", inside=True)
            params = {}
            for item in set_:
                key, sep, value = item.partition("=")
                if not sep:
                    raise ConfigError(f"--set {item!r}: expected key=value")
                params[key] = yaml.safe_load(value)
            SparseShardedIndex.build(store, out, kind=kind, params=params or None)
        else:
            check_out_dir(out, "--out", marker=INDEX_MARKER)
            ShardedIndex.build(store, out, kind=kind, train_sample=train_sample, seed=seed)
        typer.echo(f"wrote {out} ({kind} index per shard)")

    _guard(go)


@app.command("export")
def export_cmd(
    out: Path = typer.Option(..., help="output folder (replaced if it holds an earlier export of the same format)"),
    model: Optional[str] = typer.Option(
        None, help="saved unirank model folder, transformers folder or 'minilm' (default)"
    ),
    kind: Optional[str] = typer.Option(None, help="bi | cross | poly | uni (read from a saved unirank folder)"),
    format_: str = typer.Option(
        "onnx", "--format", help="onnx | ranker (unirank / sentence-transformers folder) | transformers"
    ),
    quantize: Optional[str] = typer.Option(None, help="--format onnx: int8 (dynamic quantisation); default fp32"),
    optimize: bool = typer.Option(
        False, "--optimize/--no-optimize", help="--format onnx: ONNX Runtime's offline BERT fusions (off: slower here)"
    ),
) -> None:
    """Export a model: ONNX graphs for ONNX Runtime (use with --backend onnx), or a plain folder."""
    from .models.base import load_ranker
    from .training.export import EXPORT_FORMATS

    def go() -> None:
        try:
            fn = EXPORT_FORMATS.get(format_)
        except KeyError as e:
            raise ConfigError(f"--format: {e.args[0]}") from None
        folder = fn(load_ranker(model, kind, device="cpu", backend="torch"), out, quantize=quantize, optimize=optimize)
        typer.echo(f"wrote {folder}")

    _guard(go)


@app.command()
def compare(
    runs: List[Path] = typer.Argument(
        ...,
        help=(
            "run folders (unirank eval: run.trec, or scores.jsonl for --task response) or TREC run files; "
            "the first is the baseline"
        ),
    ),
    qrels: Optional[Path] = typer.Option(
        None, help="retrieval: TREC qrels file, BEIR qrels .tsv, or BEIR folder (adds texts to the report)"
    ),
    split: str = typer.Option("test", help="qrels split when --qrels is a BEIR folder"),
    names: Optional[str] = typer.Option(
        None, help="comma-separated system names, one per run (default: folder / file names)"
    ),
    measures: Optional[str] = typer.Option(
        None, help="comma-separated; retrieval default ndcg@10,recall@100,mrr@10; response default R<n>@k,mrr"
    ),
    baseline: Optional[str] = typer.Option(None, help="system the others are tested against (default: the first)"),
    all_pairs: bool = typer.Option(False, "--all-pairs", help="test every pair, not only against the baseline"),
    test: str = typer.Option("t", help="test that marks significance: t (paired t-test) | fisher (randomization)"),
    alpha: float = typer.Option(0.05),
    correction: str = typer.Option("holm", help="holm | none (per measure, across the pairs)"),
    permutations: int = typer.Option(10000, help="randomization test: random sign patterns (exact when 2^n is fewer)"),
    bootstrap: int = typer.Option(10000, help="bootstrap resamples for the CI of the mean difference"),
    confidence: float = typer.Option(0.95),
    seed: int = typer.Option(0),
    missing: str = typer.Option(
        "skip", help="judged queries a run lacks: skip (compare the common queries, reported) | zero"
    ),
    top_queries: int = typer.Option(10, help="most-changed queries per pair shown in report.html"),
    out: Optional[Path] = typer.Option(
        None, help="output folder: comparison.json, comparison.md, per_query.tsv, report.html"
    ),
) -> None:
    """Paired significance tests between systems over the same queries (t-test, randomization, bootstrap CI, Holm)."""
    from .eval.compare import CompareConfig, run_compare

    def go() -> None:
        cfg = CompareConfig(
            runs=[str(r) for r in runs],
            qrels=str(qrels) if qrels else None,
            split=split,
            names=[n.strip() for n in names.split(",")] if names else None,
            measures=[m.strip() for m in measures.split(",") if m.strip()] if measures is not None else None,
            baseline=baseline,
            all_pairs=all_pairs,
            test=test,
            alpha=alpha,
            correction=correction,
            permutations=permutations,
            bootstrap=bootstrap,
            confidence=confidence,
            seed=seed,
            missing=missing,
            top_queries=top_queries,
            out=str(out) if out else None,
        )
        run_compare(cfg)
        if cfg.out:
            typer.echo(f"wrote {cfg.out}: comparison.json, comparison.md, per_query.tsv, report.html")

    _guard(go)


@app.command()
def demo(
    out: Path = typer.Option(Path("unirank-demo"), help="where the reports go"),
    limit_queries: int = typer.Option(300, help="test queries evaluated"),
    max_docs: int = typer.Option(3000, help="corpus size searched (judged docs + a stable sample)"),
    finetune_steps: Optional[int] = typer.Option(  # the default is unirank.training.demo.DEMO_STEPS
        None, help="training steps of the fine-tuning step (default 24; 0 skips it); the same numbers every run"
    ),
    finetune_minutes: Optional[float] = typer.Option(
        None, help="instead of a step count: as many steps as fit this many minutes (varies with the machine)"
    ),
) -> None:
    """BM25 vs zero-shot vs briefly fine-tuned all-MiniLM-L6-v2 on the embedded stdlib-codesearch set."""
    from .demo import run_demo

    _guard(
        lambda: run_demo(
            out,
            limit_queries=limit_queries,
            max_docs=max_docs,
            finetune_steps=finetune_steps,
            finetune_minutes=finetune_minutes,
        )
    )


@app.command()
def serve(
    model: Optional[str] = typer.Option(
        None, help="ranker for /rank and reranking: unirank/transformers folder, 'minilm', or hub name"
    ),
    kind: Optional[str] = typer.Option(
        None, help="bi | cross | poly | uni | splade (default: the saved model folder's kind, else bi)"
    ),
    index: Optional[str] = typer.Option(None, help="documents for /search: stdlib-codesearch or a BEIR folder"),
    retriever: str = typer.Option(
        "bm25", help="bm25 | dense | hybrid | splade | fusion | cur (needs --set cur.index=IX)"
    ),
    dense_model: Optional[str] = typer.Option(
        None,
        help="bi-encoder of a dense/hybrid index when --kind is not bi; "
        "with --retriever splade the SPLADE model (default: --model if --kind splade, else splade-tiny)",
    ),
    max_docs: Optional[int] = typer.Option(None, min=1, help="index only the first N documents"),
    device: Optional[str] = typer.Option(None, help="cpu | cuda"),
    backend: str = typer.Option(
        "torch", help="inference backend of --model and a dense index: torch | onnx[:quantize=int8,threads=N]"
    ),
    host: str = typer.Option("127.0.0.1", help="interface (loopback by default)"),
    port: int = typer.Option(8000),
    api_key: Optional[str] = typer.Option(
        None, envvar="UNIRANK_API_KEY", help="require X-API-Key or Authorization: Bearer"
    ),
    batching: bool = typer.Option(True, "--batching/--no-batching", help="dynamic server-side batching"),
    max_batch_size: int = typer.Option(32),
    max_wait_ms: float = typer.Option(1.0, help="how long a batch waits to fill"),
    max_queue: int = typer.Option(1024),
    max_candidates: int = typer.Option(100),
    max_k: int = typer.Option(100),
    max_text_chars: int = typer.Option(10000),
    max_turns: int = typer.Option(64),
    max_encode_texts: int = typer.Option(64),
    max_body_bytes: int = typer.Option(1048576),
    text_policy: str = typer.Option("reject", help="texts over --max-text-chars: reject (422) | truncate"),
    rerank_depth: int = typer.Option(20, min=1, help="first-stage documents /search reranks"),
    log_level: str = typer.Option("info", help="critical | error | warning | info | debug | trace"),
    graceful_timeout: float = typer.Option(30.0),
    body_timeout: float = typer.Option(10.0, help="seconds a request body may take to arrive (408 after)"),
    set_: List[str] = typer.Option([], "--set", help="retriever config key=value, e.g. cur.index=IX cur.budget=100"),
) -> None:
    """HTTP service: /search, /rank, /encode, /healthz, /readyz, /metrics (OpenAPI at /docs)."""
    from .serve.app import serve_main

    opts = dict(
        retriever=retriever,
        retriever_set=list(set_),
        dense_model=dense_model,
        max_docs=max_docs,
        device=device,
        batching=batching,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        max_candidates=max_candidates,
        max_k=max_k,
        max_text_chars=max_text_chars,
        max_turns=max_turns,
        max_encode_texts=max_encode_texts,
        max_body_bytes=max_body_bytes,
        text_policy=text_policy,
        rerank_depth=rerank_depth,
        log_level=log_level,
        graceful_timeout=graceful_timeout,
        body_timeout_s=body_timeout,
        backend=backend,
    )
    _guard(lambda: serve_main(model, index, kind, host=host, port=port, api_key=api_key, **opts))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. A command-line mistake (unknown flag, a value of the wrong
    type, an unreadable ``--config``) is one line too, exit status 2, like every user error."""
    try:
        code = app(args=argv if argv is not None else sys.argv[1:], prog_name="unirank", standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except typer.TyperException as e:  # click's usage errors (typer vendors click)
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `unirank` / `unirank eval`: the help
            e.show()
            sys.exit(getattr(e, "exit_code", 2))
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        typer.echo(f"error: {' '.join(e.format_message().split())}{hint}", err=True)
        sys.exit(getattr(e, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)  # without standalone mode click returns a typer.Exit's status


if __name__ == "__main__":  # pragma: no cover
    main()
