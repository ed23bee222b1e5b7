"""HTTP APIs that RAG stacks already speak, beside unirank's own routes.

* ``POST /v1/embeddings`` - OpenAI's embeddings API: ``{"input": str | [str], "model"?,
  "encoding_format"?: "float" | "base64", "dimensions"?, "user"?}`` ->
  ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
  "usage": {"prompt_tokens", "total_tokens"}}``. ``base64`` is the float32 little-endian
  bytes of each vector (what the ``openai`` Python client asks for by default and decodes).
  The texts are embedded as documents; ``"input_type": "query"`` (as Cohere / Jina / Voyage
  name it) embeds them as queries. Token-id inputs are refused (send text); ``dimensions``
  must equal the model's.
* ``POST /v1/rerank`` - the Cohere / Jina rerank API: ``{"query",
  "documents": [str | {"text": str}], "top_n"?, "return_documents"?, "model"?}`` ->
  ``{"id", "model", "results": [{"index", "relevance_score", "document"?: {"text"}}],
  "usage": {"total_tokens"}, "meta": {"billed_units": {"search_units": 1}}}``, best first.
  ``relevance_score`` is the server ranker's raw score (a cross-encoder's logit, a
  bi-encoder's cosine), not squashed into [0, 1]: it orders documents, as clients use it.

Both run through the same request limits, dynamic batchers and API-key check as ``/encode``
and ``/rank`` (a key goes in ``Authorization: Bearer``, as these clients send it); a limit
error names the field of *this* API (``input``, ``documents``, ``query``).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from .protocol import EncodeRequest, RankRequest

__all__ = [
    "EmbeddingsRequest",
    "EmbeddingsResponse",
    "RerankRequest",
    "RerankResponse",
    "add_compat_routes",
    "embedding_payload",
]


class _Lenient(BaseModel):
    # clients send fields unirank does not use ("user", "max_chunks_per_doc", ...): ignored, as the APIs do
    model_config = ConfigDict(extra="ignore")


class EmbeddingsRequest(_Lenient):
    """``POST /v1/embeddings`` (OpenAI)."""

    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]] = Field(
        description="a text or a list of texts"
    )
    model: StrictStr | None = Field(
        None, description="ignored: the server embeds with its own model (echoed back as its name)"
    )
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float lists, or base64 of float32 little-endian bytes"
    )
    dimensions: StrictInt | None = Field(None, ge=1, description="must equal the model's dimension when given")
    input_type: Literal["query", "document", "search_query", "search_document", "passage"] | None = Field(
        None, description="embed as queries or as documents (default)"
    )


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class RerankDocument(_Lenient):
    text: StrictStr


class RerankRequest(_Lenient):
    """``POST /v1/rerank`` (Cohere / Jina)."""

    query: StrictStr
    documents: list[StrictStr | RerankDocument] = Field(description="texts, or objects with a text")
    top_n: StrictInt | None = Field(None, ge=1, description="return only the best top_n (default: all)")
    return_documents: StrictBool = Field(False, description="include each result's document text")
    model: StrictStr | None = Field(
        None, description="ignored: the server reranks with its own model (echoed back as its name)"
    )


class RerankResult(BaseModel):
    index: int = Field(description="position of the document in the request")
    relevance_score: float = Field(description="the ranker's raw score, higher is more relevant")
    document: RerankDocument | None = None


class RerankUsage(BaseModel):
    total_tokens: int


class RerankResponse(BaseModel):
    id: str
    model: str
    results: list[RerankResult] = Field(description="documents, best first (ties keep request order)")
    usage: RerankUsage
    meta: dict[str, Any] = Field(default_factory=lambda: {"billed_units": {"search_units": 1}})


def embedding_payload(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """One embedding as OpenAI sends it: a float list, or base64 of its float32 little-endian bytes.

    Example:
        >>> v = np.array([1.0, -2.0], dtype=np.float32)
        >>> embedding_payload(v, "float")
        [1.0, -2.0]
        >>> np.frombuffer(base64.b64decode(embedding_payload(v, "base64")), dtype="<f4").tolist()
        [1.0, -2.0]
    """
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def _token_count(tokenizer: Any, texts: list[str]) -> int:
    if tokenizer is None or not texts:
        return 0
    return sum(
        len(ids) for ids in tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    )


def _renamed(errors: list[dict], names: dict[str, str]) -> list[dict]:
    """Validation errors with unirank's field names replaced by this API's."""
    out = []
    for e in errors:
        loc = list(e.get("loc", []))
        if len(loc) > 1 and loc[1] in names:
            loc[1] = names[loc[1]]
        out.append({**e, "loc": loc})
    return out


def add_compat_routes(
    app: Any,
    *,
    prepare: Callable[[Any], tuple[Any, int]],
    ready: Callable[[str, str], Any],
    submit: Callable[[str, Any], Any],
    invalid: Callable[[list[dict]], Exception],
) -> None:
    """Add ``/v1/embeddings`` and ``/v1/rerank`` to a :func:`~unirank.serve.app.build_app` app.

    Args:
        app: the FastAPI app.
        prepare: the app's limit check and text policy (a unirank request -> (request, truncated)).
        ready: the app's "loaded backend with this part, else 503 / 404".
        submit: the app's "queue an item on a batcher and await its result".
        invalid: makes the 422 error of a list of validation errors.
    """
    from fastapi.exceptions import RequestValidationError

    def checked(req: Any, names: dict[str, str]) -> Any:
        try:
            fixed, _ = prepare(req)
        except RequestValidationError as e:
            raise invalid(_renamed(list(e.errors()), names)) from None
        return fixed

    def model_name(be: Any) -> str:
        return str(be.info.get("model") or be.info.get("kind") or "unirank")

    missing = {
        404: {"description": "the server was started without the part this route needs"},
        503: {"description": "loading, overloaded or shutting down (see Retry-After)"},
    }

    @app.post("/v1/embeddings", response_model=EmbeddingsResponse, responses=missing, tags=["compatible APIs"])
    async def embeddings(req: EmbeddingsRequest) -> EmbeddingsResponse:
        """OpenAI-compatible embeddings of the server's bi-encoder (documents unless ``input_type`` says query)."""
        texts = [req.input] if isinstance(req.input, str) else list(req.input)
        if any(not isinstance(t, str) for t in texts):
            raise invalid(
                [
                    {
                        "loc": ["body", "input"],
                        "msg": "token-id input is not accepted; send the text",
                        "type": "value_error",
                    }
                ]
            )
        be = ready("encoder", "bi-encoder (start it with --model DIR --kind bi, or with a dense --retriever)")
        kind = "query" if req.input_type in ("query", "search_query") else "doc"
        fixed = checked(EncodeRequest(texts=texts, kind=kind), {"texts": "input"})
        vecs = await submit("encode", (list(fixed.texts), kind)) if texts else np.zeros((0, 0), dtype=np.float32)
        if req.dimensions is not None and texts and req.dimensions != vecs.shape[1]:
            raise invalid(
                [
                    {
                        "loc": ["body", "dimensions"],
                        "msg": f"this model's embeddings have {vecs.shape[1]} dimensions (got {req.dimensions})",
                        "type": "value_error",
                    }
                ]
            )
        n_tok = _token_count(getattr(be.encoder, "tokenizer", None), list(fixed.texts))
        return EmbeddingsResponse(
            data=[
                EmbeddingData(index=i, embedding=embedding_payload(v, req.encoding_format)) for i, v in enumerate(vecs)
            ],
            model=model_name(be),
            usage=Usage(prompt_tokens=n_tok, total_tokens=n_tok),
        )

    async def rerank(req: RerankRequest) -> RerankResponse:
        """Cohere / Jina-compatible reranking of ``documents`` for ``query`` with the server's ranker, best first."""
        docs = [d if isinstance(d, str) else d.text for d in req.documents]
        be = ready("ranker", "ranker model (start it with --model)")
        fixed = checked(
            RankRequest(context=req.query, candidates=docs, top_k=req.top_n),
            {"candidates": "documents", "context": "query"},
        )
        scores = await submit("rank", (fixed.context, list(fixed.candidates))) if docs else []
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[: req.top_n]
        n_tok = _token_count(getattr(be.ranker, "tokenizer", None), [fixed.context, *fixed.candidates])
        return RerankResponse(
            id=str(uuid.uuid4()),
            model=model_name(be),
            usage=RerankUsage(total_tokens=n_tok),
            results=[
                RerankResult(
                    index=i,
                    relevance_score=scores[i],
                    document=RerankDocument(text=docs[i]) if req.return_documents else None,
                )
                for i in order
            ],
        )

    app.post(
        "/v1/rerank",
        response_model=RerankResponse,
        response_model_exclude_none=True,
        responses=missing,
        tags=["compatible APIs"],
    )(rerank)
