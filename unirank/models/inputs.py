"""Tokenisation, truncation and packing shared by the cross-, poly- and Uni-Encoder.

Layout of one packed row (one context and its N candidates)::

    [CLS] context [SEP] | [CLS] cand_1 [SEP] | [CLS] cand_2 [SEP] | ... | [PAD] ...
    segment ids   0 ... 0 |  1 ............. 1 |  2 ............. 2 | ... |  -1 ...
    token types   0 ... 0 |  1 ............. 1 |  1 ............. 1 | ... |   0 ...
    positions     0 .. c-1|  c, c+1, ...       |  c, c+1, ...       | ... |   0 ...

where ``c`` is the length of the context segment (``[CLS]`` and ``[SEP]`` included).
Every candidate's position ids restart at ``c``, as in the official Uni-Encoder code
(dll-wu/Uni-Encoder, ``utils/dataset.py``), so all candidates are treated alike and
scores are permutation-equivariant. With ``candidate_cls=False`` a candidate segment
is ``cand [SEP]``: a row with one candidate is then exactly the standard BERT pair
encoding ``[CLS] context [SEP] cand [SEP]`` (token types 0/1, positions 0..T-1), which is
how :class:`~unirank.models.cross.CrossEncoder` packs its pairs by default.

Contexts are a string or a list of turns, oldest first. Turns are joined with a
separator (default: the tokenizer's ``[SEP]`` token; see :class:`TextPacker`) and
truncated **from the left**: the most recent whole turns that fit are kept; only when the
newest turn alone is too long is it cut at token level, keeping its last tokens.
The official code prefixes speaker tokens ``[unused1]/[unused2]`` instead of a
separator and also drops whole turns from the left: ``speaker_tokens`` does the same here
(:func:`mark_speakers`; the separator then defaults to nothing). Candidates keep their *first*
tokens, the usual convention for documents and for Hugging Face truncation (the official
code keeps a response's last 254 tokens).

``max_context_length`` and ``max_candidate_length`` count whole segments, special tokens
included. Packing itself is vectorised: token ids, segment ids, positions and token
types of the whole batch are laid out with a handful of tensor operations.

Example:
    >>> b = pack_segments([[7, 8]], [[[5], [6, 6]]], cls_id=101, sep_id=102, pad_id=0)
    >>> b.input_ids.tolist()
    [[101, 7, 8, 102, 101, 5, 102, 101, 6, 6, 102]]
    >>> b.segment_ids.tolist()
    [[0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2]]
    >>> b.position_ids.tolist()
    [[0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7]]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from ..errors import ConfigError
from .base import Context


@dataclass(frozen=True)
class PackedBatch:
    """A batch of packed rows (see the module docstring for the layout).

    Shapes:
        input_ids, token_type_ids, position_ids, segment_ids: (B, L) long;
        candidate_mask: (B, N) bool, True where candidate slot k of row b is real.
    """

    input_ids: torch.Tensor
    token_type_ids: torch.Tensor
    position_ids: torch.Tensor
    segment_ids: torch.Tensor
    candidate_mask: torch.Tensor

    @property
    def attention_mask(self) -> torch.Tensor:
        """(B, L) long padding mask: 1 for real tokens."""
        return (self.segment_ids >= 0).long()

    def to(self, device: torch.device | str) -> PackedBatch:
        """The same batch on ``device``."""
        return PackedBatch(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


def join_turns(turns: Sequence[Sequence[int]], separator: Sequence[int], budget: int) -> list[int]:
    """Join tokenised turns (oldest first) with ``separator``, keeping the most recent ones.

    Whole turns are dropped from the left until the rest fits in ``budget`` tokens; if even
    the newest turn alone does not fit, its last ``budget`` tokens are kept.

    Args:
        turns: token ids per turn, oldest first.
        separator: token ids placed between consecutive turns (may be empty).
        budget: the most tokens the result may hold (>= 0).

    Returns:
        The joined token ids, ``len(result) <= budget``.

    Example:
        >>> join_turns([[1, 1], [2, 2, 2], [3]], [0], budget=5)
        [2, 2, 2, 0, 3]
        >>> join_turns([[1, 1], [2, 2, 2], [3]], [0], budget=4)
        [3]
        >>> join_turns([[1], [2, 3, 4, 5]], [0], budget=2)
        [4, 5]
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    kept: list[Sequence[int]] = []
    total = 0
    for turn in reversed(turns):
        need = len(turn) + (len(separator) if kept else 0)
        if total + need > budget:
            break
        kept.append(turn)
        total += need
    if not kept:
        if not turns or budget == 0:
            return []
        return list(turns[-1][-budget:])
    out: list[int] = []
    for i, turn in enumerate(reversed(kept)):
        if i:
            out.extend(separator)
        out.extend(turn)
    return out


def mark_speakers(turns: Sequence[Sequence[int]], speaker_ids: Sequence[int]) -> list[list[int]]:
    """Prefix every turn with a speaker token, cycling *backwards from the newest turn*, which
    gets the last one: with ``[A, B]`` the turns read ``... A B A B`` (the official
    Uni-Encoder layout with ``[unused1]``, ``[unused2]``: the turn before the reply to choose
    is always ``[unused2]``, whatever the number of turns). Counting from the newest turn
    keeps each turn's token when older turns are truncated away.

    Args:
        turns: token ids per turn, oldest first.
        speaker_ids: one token id per speaker (>= 1).

    Returns:
        The turns, each with its speaker id in front.

    Example:
        >>> mark_speakers([[5], [6, 6], [7]], [1, 2])
        [[2, 5], [1, 6, 6], [2, 7]]
        >>> mark_speakers([[6, 6], [7]], [1, 2])
        [[1, 6, 6], [2, 7]]
    """
    if not speaker_ids:
        raise ValueError("speaker_ids must not be empty")
    n, s = len(turns), len(speaker_ids)
    return [[int(speaker_ids[(s - 1 - (n - 1 - k)) % s]), *t] for k, t in enumerate(turns)]


def pack_segments(
    contexts: Sequence[Sequence[int]],
    candidates: Sequence[Sequence[Sequence[int]]],
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    candidate_cls: bool = True,
    candidate_token_type: int = 1,
    candidate_sep: bool = False,
) -> PackedBatch:
    """Pack B contexts and their (ragged) candidate lists into padded tensors.

    Token ids must already be truncated; this adds the special tokens: ``[CLS] ctx [SEP]``
    then, per candidate, ``[CLS] cand [SEP]`` (or ``cand [SEP]`` with
    ``candidate_cls=False``). A row with no candidates is a plain single-sequence encoding.

    Args:
        contexts: B lists of context token ids (no special tokens).
        candidates: B lists of N_b candidates, each a list of token ids (no special tokens).
        cls_id, sep_id, pad_id: the tokenizer's special token ids.
        candidate_cls: start each candidate segment with ``[CLS]``.
        candidate_token_type: token type id of candidate tokens (context tokens get 0).
        candidate_sep: start each candidate segment with ``[SEP]`` instead (RoBERTa's pair
            encoding ``<s> A </s></s> B </s>``); excludes ``candidate_cls``.

    Shapes:
        -> PackedBatch with L = max_b (c_b + sum_k len(cand_bk)), N = max_b N_b.

    Returns:
        A :class:`PackedBatch`; padding has id ``pad_id``, segment -1, token type 0,
        position 0; ``candidate_mask[b, k]`` is False for absent candidate slots.

    Example:
        >>> b = pack_segments([[7], [8, 8]], [[[5, 5]], []], cls_id=1, sep_id=2, pad_id=0,
        ...                   candidate_cls=False)
        >>> b.input_ids.tolist(), b.token_type_ids.tolist()
        ([[1, 7, 2, 5, 5, 2], [1, 8, 8, 2, 0, 0]], [[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]])
        >>> b.position_ids.tolist(), b.candidate_mask.tolist()
        ([[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 0, 0]], [[True], [False]])
    """
    if len(contexts) != len(candidates):
        raise ValueError(f"{len(contexts)} contexts but {len(candidates)} candidate lists")
    if not contexts:
        raise ValueError("cannot pack an empty batch")
    if candidate_cls and candidate_sep:
        raise ValueError("candidate_cls and candidate_sep exclude each other")
    B = len(contexts)
    N = max(len(c) for c in candidates)
    head = [cls_id] if candidate_cls else [sep_id] if candidate_sep else []
    flat: list[int] = []
    rows: list[list[int]] = []  # segment lengths per row, context first, zero for absent slots
    for ctx, cands in zip(contexts, candidates, strict=True):
        flat.append(cls_id)
        flat.extend(ctx)
        flat.append(sep_id)
        for cand in cands:
            flat.extend(head)
            flat.extend(cand)
            flat.append(sep_id)
        rows.append([len(ctx) + 2] + [len(c) + len(head) + 1 for c in cands] + [0] * (N - len(cands)))
    lengths = torch.tensor(rows, dtype=torch.long)  # (B, N + 1)

    seg_len = lengths.flatten()  # (B*(N+1),) segment lengths in row-major order
    row_len = lengths.sum(1)
    L = int(row_len.max())
    real = torch.arange(L)[None, :] < row_len[:, None]  # (B, L); True cells in row-major = flat order

    # per real token, in flat order: its segment number, its offset inside the segment,
    # and the position shift of its segment (0 for contexts, c_b for candidates)
    seg_no = torch.arange(N + 1).repeat(B)
    seg_start = torch.cumsum(seg_len, 0) - seg_len
    shift = lengths[:, :1].expand(B, N + 1).clone()
    shift[:, 0] = 0
    tok_seg = torch.repeat_interleave(seg_no, seg_len)
    tok_offset = torch.arange(int(seg_len.sum())) - torch.repeat_interleave(seg_start, seg_len)
    tok_pos = tok_offset + torch.repeat_interleave(shift.flatten(), seg_len)

    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    input_ids[real] = torch.tensor(flat, dtype=torch.long)
    segment_ids = torch.full((B, L), -1, dtype=torch.long)
    segment_ids[real] = tok_seg
    position_ids = torch.zeros(B, L, dtype=torch.long)
    position_ids[real] = tok_pos
    token_type_ids = torch.where(segment_ids > 0, candidate_token_type, 0).long()
    return PackedBatch(input_ids, token_type_ids, position_ids, segment_ids, lengths[:, 1:] > 0)


def as_turns(context: Context) -> list[str]:
    """A context as a list of turns (oldest first); a string is one turn.

    Example:
        >>> as_turns("hi"), as_turns(["hi", "hello"])
        (['hi'], ['hi', 'hello'])
    """
    if isinstance(context, str):
        return [context]
    turns = list(context)
    if not all(isinstance(t, str) for t in turns):
        raise TypeError(f"a context is a str or a list of str turns; got {context!r}")
    return turns


@dataclass(frozen=True, eq=False)
class TextPacker:
    """Turns texts into truncated token ids and packed batches with one tokenizer.

    Args:
        tokenizer: a Hugging Face tokenizer with cls/sep/pad tokens (BERT-style).
        max_context_length: most tokens of the context segment, ``[CLS]`` and ``[SEP]``
            included (>= 2).
        max_candidate_length: most tokens of one candidate segment, its special tokens
            included.
        turn_separator: placed between dialogue turns. ``None`` (default) = the
            tokenizer's sep token (nothing when ``speaker_tokens`` mark the turns); a string
            that is one vocabulary token (e.g. ``"[unused1]"``) = that token; ``""`` =
            nothing; any other string is tokenised.
        speaker_tokens: vocabulary tokens put in front of every context turn, cycling back
            from the newest turn, which gets the last (:func:`mark_speakers`; the Uni-Encoder
            paper's ``["[unused1]", "[unused2]"]``). ``None``: no speaker tokens. Candidates
            get none.
        candidate_cls: candidate segments start with ``[CLS]`` (Uni-Encoder) or not
            (standard pair encoding).
        candidate_token_type: token type id of candidate tokens (needs a model with
            ``type_vocab_size`` > that id).
        candidate_sep: candidate segments start with ``[SEP]`` (RoBERTa pair encoding).

    Example:
        >>> from unirank.models.backbone import tiny_backbone
        >>> p = TextPacker(tiny_backbone().tokenizer, max_context_length=4)
        >>> tok = p.tokenizer.convert_ids_to_tokens
        >>> tok(p.context_ids([["old turn", "hello world"]])[0])
        ['hello', 'world']
        >>> tok(p.pack(["hi"], [["yes", "no"]]).input_ids[0].tolist())
        ['[CLS]', 'hi', '[SEP]', '[CLS]', 'yes', '[SEP]', '[CLS]', 'no', '[SEP]']
    """

    tokenizer: Any
    max_context_length: int = 256
    max_candidate_length: int = 128
    turn_separator: str | None = None
    candidate_cls: bool = True
    candidate_token_type: int = 1
    candidate_sep: bool = False
    speaker_tokens: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.speaker_tokens is not None:
            object.__setattr__(self, "speaker_tokens", tuple(self.speaker_tokens))
            unk = self.tokenizer.unk_token_id
            bad = [
                t
                for t in self.speaker_tokens
                if not isinstance(t, str) or self.tokenizer.convert_tokens_to_ids(t) in (None, unk)
            ]
            if bad or not self.speaker_tokens:
                raise ConfigError(
                    f"speaker_tokens: {bad or 'an empty list'} is not a list of vocabulary tokens "
                    f'(e.g. ["[unused1]", "[unused2]"] for a BERT vocabulary)'
                )
        if self.candidate_cls and self.candidate_sep:
            raise ConfigError("candidate_cls and candidate_sep exclude each other")
        if self.max_context_length < 2:
            raise ConfigError(f"max_context_length must be >= 2 ([CLS] and [SEP]); got {self.max_context_length}")
        if self.max_candidate_length < self._candidate_specials + 1:
            raise ConfigError(
                f"max_candidate_length must be >= {self._candidate_specials + 1}; got {self.max_candidate_length}"
            )
        for name in ("cls_token_id", "sep_token_id", "pad_token_id"):
            if getattr(self.tokenizer, name, None) is None:
                raise ConfigError(f"the tokenizer has no {name.removesuffix('_id')}; a BERT-style tokenizer is needed")

    @property
    def _candidate_specials(self) -> int:
        return 2 if self.candidate_cls or self.candidate_sep else 1

    @cached_property
    def separator_ids(self) -> list[int]:
        """Token ids placed between turns (see ``turn_separator``)."""
        sep = self.turn_separator
        if sep is None:
            return [] if self.speaker_tokens else [int(self.tokenizer.sep_token_id)]
        if sep == "":
            return []
        tid = self.tokenizer.convert_tokens_to_ids(sep)
        if tid is not None and (tid != self.tokenizer.unk_token_id or sep == self.tokenizer.unk_token):
            return [int(tid)]
        return list(self.tokenizer(sep, add_special_tokens=False)["input_ids"])

    @cached_property
    def speaker_ids(self) -> list[int]:
        """Token ids of ``speaker_tokens`` (empty without them)."""
        return [int(self.tokenizer.convert_tokens_to_ids(t)) for t in self.speaker_tokens or ()]

    @cached_property
    def structure_ids(self) -> frozenset[int]:
        """Ids of the tokens that give a packed row its structure, never text: the tokenizer's
        special tokens (``[CLS]``, ``[SEP]``, ``[PAD]``, ...), the speaker tokens and a
        one-token turn separator. The MLM auxiliary loss never masks them."""
        ids = set(int(i) for i in self.tokenizer.all_special_ids) | set(self.speaker_ids)
        if len(self.separator_ids) == 1:
            ids |= set(self.separator_ids)
        return frozenset(ids)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, no special tokens, no truncation (one batched call)."""
        if not texts:
            return []
        return [list(x) for x in self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]]

    def context_ids(self, contexts: Sequence[Context]) -> list[list[int]]:
        """Each context's token ids (no special tokens), most recent turns kept."""
        turns = [as_turns(c) for c in contexts]
        ids = self.tokenize([t for ts in turns for t in ts])
        out, i = [], 0
        for ts in turns:
            turn_ids = ids[i : i + len(ts)]
            if self.speaker_tokens:
                turn_ids = mark_speakers(turn_ids, self.speaker_ids)
            out.append(join_turns(turn_ids, self.separator_ids, self.max_context_length - 2))
            i += len(ts)
        return out

    def candidate_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each candidate's first ``max_candidate_length`` minus special-token ids."""
        budget = self.max_candidate_length - self._candidate_specials
        return [ids[:budget] for ids in self.tokenize(texts)]

    def candidate_groups(self, candidates: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        """:meth:`candidate_ids` of every context's list, tokenised in one batched call."""
        flat = self.candidate_ids([c for cands in candidates for c in cands])
        grouped, i = [], 0
        for cands in candidates:
            grouped.append(flat[i : i + len(cands)])
            i += len(cands)
        return grouped

    def pack_ids(self, contexts: Sequence[Sequence[int]], candidates: Sequence[Sequence[Sequence[int]]]) -> PackedBatch:
        """:func:`pack_segments` with this packer's tokenizer and settings."""
        tok = self.tokenizer
        return pack_segments(
            contexts,
            candidates,
            cls_id=int(tok.cls_token_id),
            sep_id=int(tok.sep_token_id),
            pad_id=int(tok.pad_token_id),
            candidate_cls=self.candidate_cls,
            candidate_token_type=self.candidate_token_type,
            candidate_sep=self.candidate_sep,
        )

    def pack(self, contexts: Sequence[Context], candidates: Sequence[Sequence[str]]) -> PackedBatch:
        """Tokenise, truncate and pack B contexts with their candidate lists."""
        if len(contexts) != len(candidates):
            raise ValueError(f"{len(contexts)} contexts but {len(candidates)} candidate lists")
        ctx = self.context_ids(contexts)
        grouped = self.candidate_groups(candidates)
        return self.pack_ids(ctx, grouped)

    def pack_single(self, texts: Sequence[str], max_length: int) -> PackedBatch:
        """Each text alone as ``[CLS] text [SEP]`` (first ``max_length - 2`` tokens), segment 0."""
        ids = [x[: max(max_length - 2, 0)] for x in self.tokenize(texts)]
        return self.pack_ids(ids, [[] for _ in ids])

    def pack_contexts(self, contexts: Sequence[Context]) -> PackedBatch:
        """Each context alone as ``[CLS] context [SEP]`` (most recent turns kept), segment 0."""
        ids = self.context_ids(contexts)
        return self.pack_ids(ids, [[] for _ in ids])
