"""The record shapes that cross module boundaries.

Qrels and Run use the plain nested-dict layout that trec_eval bindings use
(``{query_id: {doc_id: value}}``) so they pass to pytrec_eval unchanged.

Example:
    >>> d = Document(id="d1", title="Title", text="Body.")
    >>> d.full_text
    'Title Body.'
    >>> Document(id="d2", text="Only body").full_text
    'Only body'
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: graded relevance judgements: query id -> doc id -> grade (int, > 0 means relevant)
Qrels = dict[str, dict[str, int]]
#: scored results: query id -> doc id -> score (higher is better)
Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Query:
    id: str
    text: str


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        """Title and text joined by a space (BEIR convention for encoders and BM25)."""
        return f"{self.title} {self.text}" if self.title else self.text


@dataclass
class RetrievalDataset:
    """A corpus, its queries and the qrels of one split."""

    name: str
    corpus: dict[str, Document]
    queries: dict[str, Query]
    qrels: Qrels
    split: str = "test"
    fingerprint: str = ""

    def split_queries(self) -> dict[str, Query]:
        """Queries that have judgements in this split, in qrels order."""
        return {qid: self.queries[qid] for qid in self.qrels}


@dataclass
class Candidate:
    id: str
    text: str
    score: float | None = None
    rank: int | None = None


@dataclass
class TrainExample:
    """One training query with positives and (mined) negatives; scores are teacher/miner scores.

    ``query`` is a string, or a tuple of dialogue turns (oldest first) for response selection.
    """

    query_id: str
    query: str | tuple[str, ...]
    positives: list[Candidate]
    negatives: list[Candidate] = field(default_factory=list)


@dataclass
class DialogueExample:
    """A context (list of turns, oldest first) with candidate replies and 0/1 labels."""

    id: str
    context: list[str]
    candidates: list[str]
    labels: list[int]
