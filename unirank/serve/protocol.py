"""Request and response shapes of ``unirank serve``, shared by the server and its clients.

The pydantic models below are the API's documentation: FastAPI turns them into the
OpenAPI schema served at ``/openapi.json`` (and ``/docs``). Static rules (types, ``k >= 1``,
no unknown fields) live on the models; the *configurable* limits (:class:`Limits`: at most
so many candidates, characters, turns, results) are checked by :func:`check_limits`, which
returns errors in the same shape FastAPI uses for validation errors, so every rejected
request is a 422 whose ``detail[*].loc`` names the offending field, e.g.
``["body", "candidates", 3]``.

Long texts are **rejected** by default (422). With ``Limits(text_policy="truncate")`` a
text longer than ``max_text_chars`` characters is cut to its first ``max_text_chars``
characters instead (a context turn keeps its *last* characters, the newest words);
the response's ``truncated`` field counts the texts that were cut. Independently, every
model truncates its input to its own token limit.

Example:
    >>> req = RankRequest(context=["hi", "how are you?"], candidates=["fine", "a cat"])
    >>> check_limits(req, Limits(max_candidates=1))[0]["loc"]
    ['body', 'candidates']
    >>> fixed, errors = apply_text_policy(SearchRequest(query="x" * 5),
    ...                                   Limits(max_text_chars=3, text_policy="truncate"))
    >>> fixed.query, errors
    ('xxx', [])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

from ..errors import ConfigError

__all__ = [
    "Limits",
    "SearchRequest",
    "SearchHit",
    "SearchResponse",
    "RankRequest",
    "RankedCandidate",
    "RankResponse",
    "EncodeRequest",
    "EncodeResponse",
    "HealthResponse",
    "ReadyResponse",
    "ErrorResponse",
    "check_limits",
    "apply_text_policy",
]


@dataclass(frozen=True)
class Limits:
    """Configurable request limits (all checked before any model work).

    Args:
        max_candidates: candidates per ``/rank`` request.
        max_encode_texts: texts per ``/encode`` request.
        max_text_chars: characters per text (query, turn, candidate, text to encode).
        max_turns: turns in a dialogue context.
        max_k: ``k`` of ``/search`` (and ``top_k`` is capped by ``max_candidates``).
        max_body_bytes: request body size; larger bodies get 413.
        text_policy: ``"reject"`` (422, default) or ``"truncate"`` texts over ``max_text_chars``.
    """

    max_candidates: int = 100
    max_encode_texts: int = 64
    max_text_chars: int = 10_000
    max_turns: int = 64
    max_k: int = 100
    max_body_bytes: int = 1 << 20
    text_policy: Literal["reject", "truncate"] = "reject"

    def __post_init__(self) -> None:
        for name in ("max_candidates", "max_encode_texts", "max_text_chars", "max_turns", "max_k", "max_body_bytes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} (Limits.{name}) must be a positive integer, got {getattr(self, name)!r}")
        if self.text_policy not in ("reject", "truncate"):
            raise ConfigError(
                f"--text-policy (Limits.text_policy) must be 'reject' or 'truncate', got {self.text_policy!r}"
            )


def _utf8(v: Any) -> Any:
    """Reject strings that cannot be UTF-8 encoded (lone surrogates from ``"\\ud800"`` escapes)."""
    for s in [v] if isinstance(v, str) else v if isinstance(v, list) else []:
        if isinstance(s, str):
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text is not valid Unicode (lone surrogate)") from None
    return v


class _Request(BaseModel):
    # unknown fields are errors, so a typo ("topk") is reported instead of silently ignored
    model_config = ConfigDict(extra="forbid")


class SearchRequest(_Request):
    """``POST /search``: retrieve the top ``k`` documents for a query."""

    query: StrictStr = Field(description="the query text")
    k: StrictInt | None = Field(
        None, ge=1, description="documents returned; default 10 or the server's max_k if smaller"
    )
    rerank: StrictBool = Field(False, description="rerank the retrieved documents with the server's ranker model")
    return_text: StrictBool = Field(True, description="include title and text of each hit")

    _check_utf8 = field_validator("query")(_utf8)


class SearchHit(BaseModel):
    id: str
    score: float = Field(description="final score (reranker score when reranked), higher is better")
    retrieval_score: float | None = Field(None, description="first-stage score when the hit was reranked")
    title: str | None = None
    text: str | None = None


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    truncated: int = Field(0, description="texts cut to max_text_chars (text_policy=truncate)")


class RankRequest(_Request):
    """``POST /rank``: score candidate texts for a query or a dialogue context."""

    context: Union[StrictStr, list[StrictStr]] = Field(description="a query, or dialogue turns oldest first")
    candidates: list[StrictStr] = Field(description="candidate texts to score")
    top_k: StrictInt | None = Field(None, ge=1, description="return only the best top_k (default: all)")

    _check_utf8 = field_validator("context", "candidates")(_utf8)


class RankedCandidate(BaseModel):
    index: int = Field(description="position of the candidate in the request")
    text: str
    score: float


class RankResponse(BaseModel):
    results: list[RankedCandidate] = Field(description="candidates, best first (ties keep request order)")
    truncated: int = 0


class EncodeRequest(_Request):
    """``POST /encode``: embed texts with the server's bi-encoder."""

    texts: list[StrictStr]
    kind: Literal["query", "doc"] = Field("doc", description="encode as queries or as documents")

    _check_utf8 = field_validator("texts")(_utf8)


class EncodeResponse(BaseModel):
    embeddings: list[list[float]]
    dim: int
    truncated: int = 0


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    status: str = Field(description="loading | ready | failed: <reason>")
    model: str | None = None
    kind: str | None = None
    index: str | None = None
    retriever: str | None = None
    documents: int | None = None
    backend: str | None = None


class ErrorResponse(BaseModel):
    detail: Any


def _err(loc: list, msg: str, type_: str = "value_error", **ctx: Any) -> dict:
    return {"loc": ["body", *loc], "msg": msg, "type": type_, **({"ctx": ctx} if ctx else {})}


def check_limits(req: BaseModel, limits: Limits) -> list[dict]:
    """Errors (FastAPI validation-error dicts) for counts over the limits; ``[]`` if none.

    Text lengths are checked by :func:`apply_text_policy`.

    Example:
        >>> check_limits(SearchRequest(query="q", k=500), Limits(max_k=100))[0]["msg"]
        'k must be at most 100 (got 500)'
    """
    errs: list[dict] = []
    if isinstance(req, SearchRequest) and req.k is not None and req.k > limits.max_k:
        errs.append(_err(["k"], f"k must be at most {limits.max_k} (got {req.k})", "less_than_equal", le=limits.max_k))
    if isinstance(req, RankRequest):
        if len(req.candidates) > limits.max_candidates:
            errs.append(
                _err(
                    ["candidates"],
                    f"at most {limits.max_candidates} candidates per request (got {len(req.candidates)})",
                    "too_long",
                    max_length=limits.max_candidates,
                )
            )
        if isinstance(req.context, list) and len(req.context) > limits.max_turns:
            errs.append(
                _err(
                    ["context"],
                    f"at most {limits.max_turns} turns per context (got {len(req.context)})",
                    "too_long",
                    max_length=limits.max_turns,
                )
            )
    if isinstance(req, EncodeRequest) and len(req.texts) > limits.max_encode_texts:
        errs.append(
            _err(
                ["texts"],
                f"at most {limits.max_encode_texts} texts per request (got {len(req.texts)})",
                "too_long",
                max_length=limits.max_encode_texts,
            )
        )
    return errs


def apply_text_policy(req: BaseModel, limits: Limits) -> tuple[BaseModel, list[dict]]:
    """Enforce ``max_text_chars``: reject (errors naming each field) or truncate.

    Queries, candidates and texts to encode keep their first ``max_text_chars`` characters;
    context turns keep their last ones (the newest words), as the models truncate tokens.

    Returns:
        ``(request, errors)``: policy "reject" gives the request unchanged and one error per
        long text (``[]`` if none); policy "truncate" gives a copy with long texts cut and
        no errors (:func:`count_truncated` on the original counts the cut texts).
    """
    n = limits.max_text_chars
    fields: list[tuple[str, bool]] = []  # (field name, keep the end?)
    if isinstance(req, SearchRequest):
        fields = [("query", False)]
    elif isinstance(req, RankRequest):
        fields = [("context", True), ("candidates", False)]
    elif isinstance(req, EncodeRequest):
        fields = [("texts", False)]
    errs: list[dict] = []
    update: dict[str, Any] = {}
    for name, keep_end in fields:
        value = getattr(req, name)
        if isinstance(value, str):
            if len(value) > n:
                errs.append(
                    _err([name], f"text longer than {n} characters (got {len(value)})", "string_too_long", max_length=n)
                )
                update[name] = value[-n:] if keep_end else value[:n]
        else:
            cut = list(value)
            for i, s in enumerate(value):
                if len(s) > n:
                    errs.append(
                        _err(
                            [name, i],
                            f"text longer than {n} characters (got {len(s)})",
                            "string_too_long",
                            max_length=n,
                        )
                    )
                    cut[i] = s[-n:] if keep_end else s[:n]
            if cut != list(value):
                update[name] = cut
    if limits.text_policy == "truncate":
        return (req.model_copy(update=update) if update else req), []
    return req, errs


def count_truncated(req: BaseModel, limits: Limits) -> int:
    """How many texts of ``req`` are longer than ``max_text_chars``.

    Example:
        >>> count_truncated(RankRequest(context="abcd", candidates=["ab", "abcdef"]), Limits(max_text_chars=3))
        2
    """
    n = limits.max_text_chars
    texts: list[str] = []
    if isinstance(req, SearchRequest):
        texts = [req.query]
    elif isinstance(req, RankRequest):
        texts = ([req.context] if isinstance(req.context, str) else list(req.context)) + list(req.candidates)
    elif isinstance(req, EncodeRequest):
        texts = list(req.texts)
    return sum(len(t) > n for t in texts)
