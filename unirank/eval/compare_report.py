"""How a comparison reads: terminal tables, markdown, and a self-contained HTML report.

Significance is marked the way ``ranx`` and IR papers do: each system gets a letter (``a``
for the first, ...) and a mean carries, as superscripts, the letters of the systems it is
significantly better than on that measure (adjusted p-value of the chosen test ``<=``
alpha). The HTML adds, per pair against the baseline, the per-query differences as sorted
bars (one panel per measure) and the queries that changed most with both systems' top
documents. Plots use matplotlib (imported lazily) as :mod:`unirank.eval.report` does.
"""

from __future__ import annotations

import html
import io
import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # compare.py imports this module to write its outputs
    from .compare import Comparison, PairResult
from .report import _png

__all__ = ["letters", "marked_mean", "comparison_markdown", "comparison_text", "html_comparison", "legend"]

_LETTERS = "abcdefghijklmnoprstuvwxyz"  # no superscript q in Unicode
_SUPER = dict(zip(_LETTERS, "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻ"))


def letters(systems: Sequence[str]) -> dict[str, str]:
    """A letter per system, in order (``s26``, ``s27``, ... past the alphabet).

    Example:
        >>> letters(["bm25", "dense"])
        {'bm25': 'a', 'dense': 'b'}
    """
    return {s: _LETTERS[i] if i < len(_LETTERS) else f"s{i + 1}" for i, s in enumerate(systems)}


def _sup(tags: Sequence[str]) -> str:
    return "".join(_SUPER.get(t, f"^{t}") for t in tags)


def marked_mean(cmp: Comparison, system: str, measure: str, superscript: bool = True) -> str:
    """``0.7059ᵃᵇ``: the mean and the letters of the systems it significantly beats."""
    tag = letters(cmp.systems)
    beaten = [tag[s] for s in cmp.beats(system, measure)]
    value = f"{cmp.means[system][measure]:.4f}"
    if not beaten:
        return value
    return value + (_sup(beaten) if superscript else "<sup>" + "".join(beaten) + "</sup>")


def legend(cmp: Comparison) -> str:
    """One sentence saying what a mark means (test, correction, family, alpha)."""
    s = cmp.settings
    test = (
        "paired t-test"
        if s["test"] == "t"
        else f"Fisher randomization test ({s['permutations']} permutations, seed {s['seed']})"
    )
    fam = len({(r.a, r.b) for r in cmp.pairs})
    corr = f"Holm-Bonferroni over the {fam} comparison(s) per measure" if s["correction"] == "holm" else "no correction"
    return (
        f"A letter after a mean: significantly better than that system (two-sided {test}, {corr}, alpha {s['alpha']})."
    )


def _p(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.2e}" if x < 1e-4 else f"{x:.4f}"


def _row(r: PairResult) -> list[str]:
    return [
        f"{r.a} vs {r.b}",
        r.measure,
        str(r.n),
        f"{r.mean_a:.4f}",
        f"{r.mean_b:.4f}",
        f"{r.diff:+.4f}",
        f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]",
        _p(r.p_t),
        _p(r.p_fisher),
        _p(r.p_t_adj),
        _p(r.p_fisher_adj),
        f"{r.wins}/{r.ties}/{r.losses}",
        f"{r.d_z:+.3f}" if math.isfinite(r.d_z) else str(r.d_z),
        "yes" if r.significant else "no",
    ]


def _pair_header(cmp: Comparison) -> list[str]:
    conf = round(100 * cmp.settings["confidence"])
    adj = "Holm" if cmp.settings["correction"] == "holm" else "adj."
    return [
        "A vs B",
        "measure",
        "n",
        "mean A",
        "mean B",
        "A - B",
        f"{conf}% CI",
        "p t",
        "p Fisher",
        f"{adj} p t",
        f"{adj} p Fisher",
        "W/T/L",
        "d_z",
        f"sig. ({cmp.settings['test']})",
    ]


def _system_label(cmp: Comparison, s: str) -> str:
    return f"({letters(cmp.systems)[s]}) {s}" + (
        " (baseline)" if s == cmp.baseline and not cmp.settings["all_pairs"] else ""
    )


def comparison_markdown(cmp: Comparison) -> str:
    """The means table with significance marks, its legend, the pairs table and the notes.

    Example:
        >>> from unirank.eval.compare import Comparison, align, compare_values
        >>> al = align({"b": {"m": {f"q{i}": 0.1 for i in range(8)}},
        ...             "a": {"m": {f"q{i}": 0.5 + i / 100 for i in range(8)}}}, ["m"])
        >>> means, pairs = compare_values(al, ["b", "a"], "b", bootstrap=100)
        >>> settings = {"test": "t", "correction": "holm", "alpha": 0.05, "confidence": 0.95, "all_pairs": False,
        ...             "permutations": 10, "seed": 0}
        >>> print(comparison_markdown(Comparison(["b", "a"], "b", ["m"], means, pairs, al, settings)).splitlines()[3])
        | (b) a | 0.5350ᵃ |
    """
    tag_rows = [
        "| system | " + " | ".join(f"{m} (n={len(cmp.aligned.qids[m])})" for m in cmp.measures) + " |",
        "|---|" + "---|" * len(cmp.measures),
    ]
    for s in cmp.systems:
        tag_rows.append(
            f"| {_system_label(cmp, s)} | " + " | ".join(marked_mean(cmp, s, m) for m in cmp.measures) + " |"
        )
    head = _pair_header(cmp)
    pair_rows = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    pair_rows += ["| " + " | ".join(_row(r)) + " |" for r in cmp.pairs]
    notes = [f"- {n}" for n in cmp.notes]
    return "\n".join(tag_rows + ["", legend(cmp), ""] + pair_rows + ([""] + notes if notes else [])) + "\n"


def comparison_text(cmp: Comparison, width: int = 150) -> str:
    """The same tables rendered with rich for the terminal."""
    from rich.console import Console
    from rich.table import Table

    means = Table(title=f"{len(cmp.systems)} systems, {cmp.task}")
    means.add_column("system")
    for m in cmp.measures:
        means.add_column(f"{m} (n={len(cmp.aligned.qids[m])})", justify="right")
    for s in cmp.systems:
        means.add_row(_system_label(cmp, s), *(marked_mean(cmp, s, m) for m in cmp.measures))
    pairs = Table(title="paired tests (full table with means and d_z: comparison.md)")
    keep = [0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 13]  # no mean A / mean B (above) or d_z: fits 150 columns
    head = _pair_header(cmp)
    for i in keep:
        pairs.add_column(head[i], justify="left" if i < 2 else "right")
    for r in cmp.pairs:
        row = _row(r)
        pairs.add_row(*(row[i] for i in keep))
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False)
    console.print(means)
    console.print(legend(cmp))
    console.print(pairs)
    return buf.getvalue()


# --------------------------------------------------------------------------- HTML


def _diff_plot(cmp: Comparison, a: str, b: str) -> str:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ms = cmp.measures
    fig, axes = plt.subplots(len(ms), 1, figsize=(8, 2.3 * len(ms)), squeeze=False)
    for ax, m in zip(axes[:, 0], ms):
        d = np.sort(cmp.aligned.values[m][a] - cmp.aligned.values[m][b])[::-1]
        colors = np.where(d > 1e-9, "#2a9d55", np.where(d < -1e-9, "#c0392b", "#999999"))
        ax.bar(np.arange(d.size), d, width=1.0, color=colors)
        ax.axhline(0, color="black", lw=0.6)
        ax.axhline(float(d.mean()), color="#1f4e9c", lw=1, ls="--", label=f"mean {d.mean():+.4f}")
        r = cmp.pair(a, b, m)
        adj = "Holm " if cmp.settings["correction"] == "holm" else ""
        p_sig = r.p_t_adj if cmp.settings["test"] == "t" else r.p_fisher_adj
        wtl = f", W/T/L {r.wins}/{r.ties}/{r.losses}, {adj}p {_p(p_sig)}" if r and r.a == a else ""
        ax.set(ylabel=f"{m}\n{a} - {b}", xlim=(-0.5, d.size - 0.5))
        ax.set_title(f"{m}: {a} - {b} per query, sorted ({d.size} queries{wtl})", fontsize=9)
        ax.set_xticks([])
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("queries, sorted by difference")
    fig.tight_layout()
    return _png(fig)


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(head: list[str], rows: list[list[str]], raw: bool = False) -> str:
    h = "".join(f"<th>{_e(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{x if raw else _e(x)}</td>" for x in row) + "</tr>" for row in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _top_list(docs: list[dict[str, Any]]) -> str:
    items = []
    for d in docs:
        rel = d["grade"] >= 1
        mark = "&#10003; " if rel else ""
        title = f" {_e(d['title'][:90])}" if d.get("title") else ""
        items.append(
            f"<li class='{'rel' if rel else 'non'}'>{mark}<code>{_e(d['id'])}</code>{title} "
            f"<span class='s'>({d['score']:.4g})</span></li>"
        )
    return "<ol>" + "".join(items) + "</ol>"


def _changed_html(block: dict[str, Any]) -> str:
    a, b, m = block["a"], block["b"], block["measure"]
    parts = [f"<h3>{_e(a)} vs {_e(b)}: the {len(block['queries'])} queries whose {_e(m)} changed most</h3>"]
    if not block["queries"]:
        return parts[0] + "<p>No query changed.</p>"
    rows = []
    for q in block["queries"]:
        rel = ", ".join(
            f"<code>{_e(r['id'])}</code>" + (f" {_e(r['title'][:60])}" if r["title"] else "") for r in q["relevant"]
        )
        head = f"<b>{_e(q['qid'])}</b>" + (f": {_e(q['text'])}" if q["text"] else "")
        head += (
            f"<br><span class='s'>{_e(m)} {q['b']:.3f} &rarr; {q['a']:.3f} ({q['diff']:+.3f}); "
            f"relevant: {rel or '-'}</span>"
        )
        rows.append([head, _top_list(q["top"][b]), _top_list(q["top"][a])])
    return parts[0] + _table(["query", f"top of {b}", f"top of {a}"], rows, raw=True)


def html_comparison(cmp: Comparison, changed: list[dict[str, Any]], title: str | None = None) -> str:
    """A self-contained page: means with marks, the pairs table, sorted per-query difference
    bars for each pair against the baseline, and the most-changed queries (``changed``, from
    :func:`unirank.eval.compare.changed_queries`)."""
    title = title or f"unirank compare: {', '.join(cmp.systems)}"
    means_rows = [
        [_e(_system_label(cmp, s)), *(marked_mean(cmp, s, m, superscript=False) for m in cmp.measures)]
        for s in cmp.systems
    ]
    means = _table(["system", *(f"{m} (n={len(cmp.aligned.qids[m])})" for m in cmp.measures)], means_rows, raw=True)
    pairs = _table(_pair_header(cmp), [_row(r) for r in cmp.pairs])
    notes = "".join(f"<li>{_e(n)}</li>" for n in cmp.notes)
    plots = []
    seen = set()
    for r in cmp.pairs:
        if cmp.baseline in (r.a, r.b) and (r.a, r.b) not in seen:
            seen.add((r.a, r.b))
            a, b = (r.a, r.b) if r.b == cmp.baseline else (r.b, r.a)
            plots.append(
                f"<h3>{_e(a)} - {_e(b)}</h3><img alt='per-query differences {_e(a)} - {_e(b)}' "
                f"src='data:image/png;base64,{_diff_plot(cmp, a, b)}'/>"
            )
    s = cmp.settings
    info = _table(
        ["setting", "value"],
        [
            [k, s[k]]
            for k in (
                "runs",
                "qrels",
                "split",
                "test",
                "correction",
                "alpha",
                "permutations",
                "bootstrap",
                "confidence",
                "seed",
                "missing",
            )
            if k in s
        ],
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>body{{font-family:sans-serif;max-width:80em;margin:2em auto}}\
td,th{{padding:2px 10px;border-bottom:1px solid #ddd;
vertical-align:top;text-align:left}}ol{{margin:0;padding-left:1.5em}}li.rel{{color:#1d6b3a}}li.non{{color:#555}}
.s{{color:#777;font-size:90%}}sup{{color:#1f4e9c}}</style></head><body><h1>{_e(title)}</h1>
<h2>Means</h2>{means}<p>{_e(legend(cmp))}</p>
{"<h2>Notes</h2><ul>" + notes + "</ul>" if notes else ""}
<h2>Paired tests</h2>{pairs}
<h2>Per-query differences against the baseline ({_e(cmp.baseline)})</h2>{"".join(plots)}
<h2>Queries that changed most</h2>{"".join(_changed_html(c) for c in changed) or "<p>(not requested)</p>"}
<h2>Settings</h2>{info}</body></html>
"""
