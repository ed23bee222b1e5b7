"""Audit of a mining run: the negatives most likely to be false, and the margin histogram.

A mined negative that scores close to (or above) its query's positive is the most likely
to be an unlabelled positive. :class:`AuditCollector` sees every query as it is mined and
keeps, in bounded memory, the ``top`` most suspicious written negatives, plus every
candidate's margin for the histograms. :func:`write_audit` writes

* ``audit.jsonl`` - one line per suspicious negative, most suspicious first;
* ``audit.html`` - a self-contained page: counts, histograms (inline SVG) and a table
  showing each suspicious negative next to its query and positive.

Definitions (the "positive" is the query's lowest-scoring positive, as in the filters):

* ``margin = neg_score - pos_score`` (miner scores); ``> 0`` means the negative outscored
  the positive;
* ``relative = margin / |pos_score|`` - the quantity the ``relative_margin`` filter
  thresholds at ``-p``; comparable across queries for BM25, whose scale varies per query;
* ``teacher_margin`` - the same difference of teacher scores, when a teacher rescored.

Suspicion is ``teacher_margin`` when the negative has a teacher score, else ``relative``.
Both outputs are deterministic (no timestamps; ties broken by query id, then doc id).

Example:
    >>> relative_margin(np.array([9.0, 11.0]), 10.0).tolist()
    [-0.1, 0.1]
"""

from __future__ import annotations

import heapq
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import write_jsonl, write_text

__all__ = ["AuditCollector", "AuditEntry", "relative_margin", "svg_histogram", "write_audit"]

#: characters of a text shown in the HTML table (the jsonl keeps the full text)
TEXT_CHARS = 700


def relative_margin(neg: np.ndarray, pos: float) -> np.ndarray:
    """``(neg - pos) / |pos|``; with ``pos == 0``, ``+inf`` / 0 / ``-inf`` by the sign of ``neg``.

    Example:
        >>> relative_margin(np.array([1.0, 0.0, -1.0]), 0.0).tolist()
        [inf, 0.0, -inf]
    """
    neg = np.asarray(neg, dtype=np.float64)
    diff = neg - pos
    if pos == 0:
        return np.where(diff > 0, np.inf, np.where(diff < 0, -np.inf, 0.0))
    return diff / abs(pos)


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


@dataclass(frozen=True)
class AuditEntry:
    """One written negative and the positive it is compared with."""

    suspicion: float
    query_id: str
    query: str
    pos_id: str
    pos_text: str
    pos_score: float
    neg_id: str
    neg_text: str
    neg_score: float
    neg_rank: int | None
    margin: float
    relative: float
    pos_teacher: float | None = None
    neg_teacher: float | None = None
    teacher_margin: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in self.__dict__.items()}


@dataclass
class AuditCollector:
    """Accumulate audit data query by query, in bounded memory.

    Args:
        top: how many suspicious negatives to keep.

    Example:
        >>> a = AuditCollector(top=1)
        >>> a.add("q1", "query", pos=("p", "pos text", 10.0, None),
        ...       candidate_scores=[9.8, 4.0],
        ...       negatives=[("n1", "neg one", 9.8, 1, None), ("n2", "neg two", 4.0, 2, None)])
        >>> [(e.neg_id, round(e.relative, 3)) for e in a.entries()]
        [('n1', -0.02)]
    """

    top: int = 50
    _heap: list[tuple[Any, ...]] = field(default_factory=list)
    _cand_margins: list[np.ndarray] = field(default_factory=list)
    _neg_margins: list[np.ndarray] = field(default_factory=list)
    _teacher_margins: list[np.ndarray] = field(default_factory=list)
    _count: int = 0

    def add(
        self,
        query_id: str,
        query: str,
        pos: tuple[str, str, float, float | None],
        candidate_scores: Sequence[float],
        negatives: Sequence[tuple[str, str, float, int | None, float | None]],
    ) -> None:
        """Record one query.

        Args:
            pos: ``(id, text, miner score, teacher score or None)`` of the anchor positive.
            candidate_scores: miner scores of every retrieved non-positive candidate.
            negatives: ``(id, text, miner score, rank or None, teacher score or None)``
                of each written negative.
        """
        pid, ptext, pscore, pteacher = pos
        self._cand_margins.append(np.asarray(candidate_scores, dtype=np.float32) - np.float32(pscore))
        if not negatives:
            return
        scores = np.array([n[2] for n in negatives], dtype=np.float64)
        margins = scores - pscore
        rel = relative_margin(scores, pscore)
        self._neg_margins.append(margins.astype(np.float32))
        for (nid, ntext, nscore, nrank, nteacher), m, r in zip(negatives, margins.tolist(), rel.tolist()):
            tm = None
            if pteacher is not None and nteacher is not None and math.isfinite(pteacher) and math.isfinite(nteacher):
                tm = float(nteacher - pteacher)
                self._teacher_margins.append(np.array([tm], dtype=np.float32))
            key = tm if tm is not None else r
            entry = AuditEntry(
                suspicion=float(key),
                query_id=query_id,
                query=query,
                pos_id=pid,
                pos_text=ptext,
                pos_score=float(pscore),
                neg_id=nid,
                neg_text=ntext,
                neg_score=float(nscore),
                neg_rank=nrank,
                margin=float(m),
                relative=float(r),
                pos_teacher=pteacher,
                neg_teacher=nteacher,
                teacher_margin=tm,
            )
            # min-heap on (key, reversed tie-break): the smallest key leaves first
            item = (float(key), _Rev(query_id), _Rev(nid), self._count, entry)
            self._count += 1
            if len(self._heap) < self.top:
                heapq.heappush(self._heap, item)
            elif self.top > 0 and item[:3] > self._heap[0][:3]:
                heapq.heapreplace(self._heap, item)

    def entries(self) -> list[AuditEntry]:
        """The kept negatives, most suspicious first (ties: query id, then doc id)."""
        return [e for *_, e in sorted(self._heap, key=lambda t: (-t[0], t[4].query_id, t[4].neg_id))]

    def margins(self) -> dict[str, np.ndarray]:
        """Histogram series: all candidates' and written negatives' miner margins (and teacher's)."""
        cat = lambda xs: np.concatenate(xs) if xs else np.empty(0, dtype=np.float32)  # noqa: E731
        out = {
            "retrieved candidates (positives excluded)": cat(self._cand_margins),
            "written negatives": cat(self._neg_margins),
        }
        if self._teacher_margins:
            out["written negatives, teacher margin"] = cat(self._teacher_margins)
        return out


class _Rev:
    """Orders strings in reverse, so that among equal keys the heap evicts later ids first."""

    __slots__ = ("s",)

    def __init__(self, s: str) -> None:
        self.s = s

    def __lt__(self, other: "_Rev") -> bool:
        return self.s > other.s

    def __gt__(self, other: "_Rev") -> bool:
        return self.s < other.s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rev) and self.s == other.s


_COLOURS = ("#4c72b0", "#dd8452", "#55a868")


def svg_histogram(
    series: Mapping[str, np.ndarray],
    bins: int = 40,
    title: str = "",
    xlabel: str = "",
    width: int = 640,
    height: int = 260,
) -> str:
    """Overlaid histograms (each series as fractions of its own size) as an inline SVG string.

    Infinite and NaN values are left out. Bins are shared (:func:`numpy.histogram_bin_edges`
    over all finite values).

    Example:
        >>> svg = svg_histogram({"a": np.array([0.0, 1.0, 1.0])}, bins=2)
        >>> svg.startswith("<svg") and svg.count("<rect") == 4   # frame, 2 bars, legend key
        True
    """
    clean = {k: np.asarray(v, dtype=np.float64) for k, v in series.items()}
    clean = {k: v[np.isfinite(v)] for k, v in clean.items()}
    allv = np.concatenate([v for v in clean.values()]) if clean else np.empty(0)
    left, right, top, bottom = 50, 10, 24, 40
    pw, ph = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="11">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
    ]
    if title:
        parts.append(
            f'<text x="{width / 2:.1f}" y="15" text-anchor="middle" font-size="13">{html.escape(title)}</text>'
        )
    if allv.size == 0:
        parts.append(f'<text x="{width / 2:.1f}" y="{top + ph / 2:.1f}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    edges = np.histogram_bin_edges(allv, bins=bins)
    fracs = {k: (np.histogram(v, bins=edges)[0] / v.size if v.size else np.zeros(bins)) for k, v in clean.items()}
    ymax = max(float(f.max()) for f in fracs.values()) or 1.0
    x0, x1 = float(edges[0]), float(edges[-1])
    span = (x1 - x0) or 1.0
    xpix = lambda x: left + (x - x0) / span * pw  # noqa: E731
    for n, (name, f) in enumerate(fracs.items()):
        colour = _COLOURS[n % len(_COLOURS)]
        for b in range(len(f)):
            if f[b] <= 0:
                continue
            h = f[b] / ymax * ph
            parts.append(
                f'<rect x="{xpix(edges[b]):.1f}" y="{top + ph - h:.1f}" '
                f'width="{max(xpix(edges[b + 1]) - xpix(edges[b]), 0.5):.1f}" height="{h:.1f}" fill="{colour}" '
                'fill-opacity="0.55"/>'
            )
        parts.append(
            f'<rect x="{left + 8}" y="{top + 6 + 14 * n}" width="10" height="10" fill="{colour}" fill-opacity="0.55"/>'
            f'<text x="{left + 22}" y="{top + 15 + 14 * n}">{html.escape(name)} (n={clean[name].size})</text>'
        )
    for t in np.linspace(x0, x1, 5):
        parts.append(f'<text x="{xpix(t):.1f}" y="{top + ph + 14}" text-anchor="middle">{t:.3g}</text>')
    if x0 < 0 < x1:
        parts.append(
            f'<line x1="{xpix(0.0):.1f}" y1="{top}" x2="{xpix(0.0):.1f}" y2="{top + ph}" stroke="#c00" '
            'stroke-dasharray="4,3"/>'
        )
    parts.append(
        f'<text x="{left - 6}" y="{top + 8}" text-anchor="end">{ymax:.2g}</text><text x="{left - 6}" y="{top + ph}" '
        'text-anchor="end">0</text>'
    )
    if xlabel:
        parts.append(
            f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">{html.escape(xlabel)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _cut(text: str) -> str:
    return html.escape(text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + " …")


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``{"a": {"b": 1}, "c": [..]}`` -> ``[("a.b", "1"), ("c", "[..]")]`` (one level of nesting per key)."""
    out: list[tuple[str, str]] = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.extend(_flatten(v, f"{prefix}{k}."))
        else:
            out.append((f"{prefix}{k}", v if isinstance(v, str) else json.dumps(v, sort_keys=True)))
    return out


def render_audit_html(
    title: str, entries: Sequence[AuditEntry], margins: Mapping[str, np.ndarray], summary: Mapping[str, Any]
) -> str:
    """The audit page (see the module docstring)."""
    miner_series = {k: v for k, v in margins.items() if "teacher" not in k}
    svgs = [
        svg_histogram(
            miner_series,
            title="neg score - pos score (miner)",
            xlabel="margin; right of the red line: the negative outscored the positive",
        )
    ]
    teacher = {k: v for k, v in margins.items() if "teacher" in k}
    if teacher:
        svgs.append(svg_histogram(teacher, title="neg score - pos score (teacher)", xlabel="teacher margin"))
    summ = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in _flatten(summary))
    has_teacher = any(e.teacher_margin is not None for e in entries)
    head = (
        "<tr><th>#</th><th>query</th><th>positive</th><th>negative</th><th>margin</th><th>relative</th>"
        + ("<th>teacher margin</th>" if has_teacher else "")
        + "</tr>"
    )
    rows = []
    for n, e in enumerate(entries, start=1):
        rows.append(
            f"<tr><td>{n}</td><td><b>{html.escape(e.query_id)}</b><br>{_cut(e.query)}</td>"
            f"<td><b>{html.escape(e.pos_id)}</b> score {_fmt(e.pos_score)}"
            + (f", teacher {_fmt(e.pos_teacher)}" if has_teacher else "")
            + f"<br>{_cut(e.pos_text)}</td>"
            f"<td><b>{html.escape(e.neg_id)}</b> rank {e.neg_rank if e.neg_rank is not None else '-'}, score "
            f"{_fmt(e.neg_score)}"
            + (f", teacher {_fmt(e.neg_teacher)}" if has_teacher else "")
            + f"<br>{_cut(e.neg_text)}</td>"
            f"<td>{_fmt(e.margin)}</td><td>{_fmt(e.relative)}</td>"
            + (f"<td>{_fmt(e.teacher_margin)}</td>" if has_teacher else "")
            + "</tr>"
        )
    key = (
        "teacher margin (teacher score of the negative minus that of the positive)"
        if has_teacher
        else "relative margin (neg - pos) / |pos| of miner scores"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:80em;margin:2em auto}}\
td,th{{padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top;text-align:left}}td{{font-size:90%}}</style>
</head><body><h1>{html.escape(title)}</h1>
<h2>Run</h2><table>{summ}</table>
<h2>Margins</h2>{"".join(f"<p>{s}</p>" for s in svgs)}
<h2>Negatives most likely to be false ({len(entries)})</h2>
<p>Written negatives ranked by {html.escape(key)}, highest first. \
The positive shown is the query's lowest-scoring positive (the one margin filters compare with). \
Inspect these: a negative that answers the query is an unlabelled positive.</p>
<table>{head}{"".join(rows)}</table></body></html>
"""


def write_audit(out_dir: str | os.PathLike, collector: AuditCollector, title: str, summary: Mapping[str, Any]) -> None:
    """Write ``audit.jsonl`` and ``audit.html`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    entries = collector.entries()
    write_jsonl(out / "audit.jsonl", (e.to_json() for e in entries))
    write_text(out / "audit.html", render_audit_html(title, entries, collector.margins(), summary))
