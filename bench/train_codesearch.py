"""stdlib-codesearch: zero-shot all-MiniLM-L6-v2 vs fine-tuned on the train split (in-batch negatives).

Usage: python bench/train_codesearch.py [--model DIR] [--device cuda] [--out DIR] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "train_codesearch"))
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    from train_scifact import _machine, evaluate

    from unirank.config import from_dict
    from unirank.train import TrainConfig, normalize_overrides, train

    out = Path(args.out)
    res = {"machine": _machine(), "argv": argv if argv is not None else sys.argv[1:]}
    res["zero_shot"] = evaluate(args.model, "stdlib-codesearch", args.device)
    print("zero-shot", res["zero_shot"], flush=True)
    cfg = from_dict(
        TrainConfig,
        {
            "model": {"kind": "bi", "name": args.model},
            "data": {"train": "stdlib-codesearch", "negatives": 0},
            "losses": {"infonce": 1.0},
            "batch_size": 64,
            "epochs": 1,
            "lr": 5e-5,
            "device": args.device,
            "dev": {"split": "dev", "measures": ["ndcg@10", "recall@100", "auc"]},
            "test": {"split": "test", "measures": ["ndcg@10", "recall@100", "mrr@10", "auc"]},
            "out": str(out / "run"),
        },
        normalize_overrides(args.set),
    )
    t = time.perf_counter()
    summary = train(cfg, progress=False)
    res["fine_tuned"] = {
        **summary.get("test", {}),
        "steps": summary["steps"],
        "train_s": summary["train_s"],
        "wall_s": round(time.perf_counter() - t, 1),
    }
    print("fine-tuned", res["fine_tuned"], flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
