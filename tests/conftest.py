import copy
import json
from pathlib import Path

import pytest
import torch

from unirank.models.backbone import Backbone, tiny_backbone


def lively_backbone(seed: int = 0) -> Backbone:
    """tiny_backbone with weight matrices redrawn at std 0.2.

    At BERT's init a random 2-layer model attends almost uniformly and cross-segment
    effects are ~1e-6, too small to tell apart from rounding. Larger weights make the
    influence of one segment on another visible, so mask and isolation tests can fail.
    """
    bb = tiny_backbone(seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in bb.model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return bb


def own_copy(bb: Backbone) -> Backbone:
    """A private copy of a shared backbone (training mode and gradients stay local)."""
    return Backbone(copy.deepcopy(bb.model), bb.tokenizer, bb.source)


def write_beir(folder: Path, docs: dict, queries: dict, qrels: dict, split: str = "test") -> Path:
    """Write a tiny BEIR folder: docs {id: (title, text)}, queries {id: text}, qrels {qid: {did: grade}}."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for d, (title, text) in docs.items():
            f.write(json.dumps({"_id": d, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for q, text in queries.items():
            f.write(json.dumps({"_id": q, "text": text}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    with open(folder / "qrels" / f"{split}.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, rel in qrels.items():
            for d, g in rel.items():
                f.write(f"{q}\t{d}\t{g}\n")
    return folder


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    docs = {
        "d1": ("Cats", "cats purr and sleep on warm sofas"),
        "d2": ("Dogs", "dogs bark at the postman every morning"),
        "d3": ("Fish", "goldfish swim in a round glass bowl"),
        "d4": ("Birds", "parrots can learn to repeat words"),
        "d5": ("Cars", "electric cars charge their batteries overnight"),
    }
    queries = {
        "q1": "why do cats purr",
        "q2": "dog barking at postman",
        "q3": "how do parrots repeat words",
        "q4": "unrelated xyzzy",
    }
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 2, "d4": 0}, "q3": {"d4": 1}, "q4": {"d5": 1}}
    return write_beir(tmp_path / "tiny", docs, queries, qrels)


from unirank.models.base import Ranker  # noqa: E402


class OverlapRanker(Ranker):
    """Score = number of distinct candidate words that occur in the context; records call shapes.

    A deterministic, weight-free ranker for testing reranking and response evaluation.
    """

    kind = "overlap"

    def __init__(self):
        super().__init__()
        self.calls = []

    def score(self, contexts, candidates):
        self.calls.append([len(c) for c in candidates])
        width = max((len(c) for c in candidates), default=0)
        out = torch.full((len(contexts), width), float("-inf"))
        for b, (ctx, cands) in enumerate(zip(contexts, candidates)):
            words = set((ctx if isinstance(ctx, str) else " ".join(ctx)).split())
            for k, c in enumerate(cands):
                out[b, k] = float(len(set(c.split()) & words))
        return out
