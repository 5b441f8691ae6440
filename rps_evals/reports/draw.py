"""`rps-evals draw`: one task (and a run's attempts at it) as a PNG, for papers and slides.

Layout, so the picture's size is known in advance: one row per training pair (input, output), then
one row per test input (input, expected output, then each attempt's prediction, wrong cells
crossed); every panel is PANEL_PX square and a TITLE_PX band above holds the task id. So the image
is (2 + k) x PANEL_PX wide (2 x PANEL_PX without a run) and rows x PANEL_PX + TITLE_PX high.
"""

from __future__ import annotations

from pathlib import Path

from rps_evals.data import DatasetError, Task, load_dataset
from rps_evals.records import InputError
from rps_evals.reports.view import ARC_COLORS, ShownRun, _is_grid, require_matplotlib, wrong_cells

DPI = 100
PANEL_PX = 200
TITLE_PX = 50


def image_size(task: Task, k: int | None) -> tuple[int, int]:
    """(width, height) in pixels of `draw_task_png` for this task and k attempts (None: no run)."""
    columns = 2 + (k or 0)
    rows = len(task.train) + task.num_tests
    return columns * PANEL_PX, rows * PANEL_PX + TITLE_PX


def draw_task_png(task_id: str, out: str | Path, run: ShownRun | None = None, dataset_name: str | None = None) -> Path:
    """Draw `task_id` from `run` (with its attempts) or from the dataset `dataset_name` alone."""
    if run is not None:
        dataset = run.dataset
        records = sorted((r for r in run.records if r.task_id == task_id), key=lambda r: r.attempt)
        k: int | None = run.k
    else:
        try:
            dataset = load_dataset(str(dataset_name))
        except DatasetError as exc:
            raise InputError(str(exc)) from None
        records, k = [], None
    if task_id not in dataset.tasks:
        raise InputError(f"task {task_id!r} is not in {'the run' if run else dataset.name} ({dataset.name})")
    task = dataset.tasks[task_id]
    plt = require_matplotlib()
    from matplotlib.colors import ListedColormap

    palette = ListedColormap(list(ARC_COLORS))
    width, height = image_size(task, k)
    columns = width // PANEL_PX
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    fig.text(0.5, 1 - (TITLE_PX / 2) / height, f"{task_id} ({dataset.name})" + (f", run {run.label}" if run else ""),
             ha="center", va="center", fontsize=12)

    def panel(row: int, column: int, grid, title: str, expected=None) -> None:
        margin = 0.12
        ax = fig.add_axes([(column + margin / 2) / columns,
                           (height - TITLE_PX - (row + 1) * PANEL_PX) / height + margin / 2 * PANEL_PX / height,
                           (1 - margin) / columns, (1 - 1.4 * margin) * PANEL_PX / height])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=8, pad=2)
        if not _is_grid(grid):
            ax.text(0.5, 0.5, "no prediction", ha="center", va="center", fontsize=8, color="#777")
            for spine in ax.spines.values():
                spine.set_linestyle("--")
            return
        h, w = len(grid), len(grid[0])
        ax.imshow(grid, cmap=palette, vmin=0, vmax=9, interpolation="nearest")
        ax.set_xticks([x - 0.5 for x in range(1, w)], minor=True)
        ax.set_yticks([y - 0.5 for y in range(1, h)], minor=True)
        ax.tick_params(which="both", length=0)
        ax.grid(which="minor", color="#555", linewidth=0.4, alpha=0.5)
        if expected is not None:
            wrong = wrong_cells(grid, expected)
            if wrong is None:
                for spine in ax.spines.values():
                    spine.set_color("#e00000")
                    spine.set_linewidth(3)
            elif wrong:
                ys, xs = zip(*wrong)
                size = min(60, 2400 / max(h, w) ** 2 + 8)
                # a white cross over a black one reads on every ARC colour, yellow and grey included
                ax.scatter(xs, ys, marker="x", s=size, c="black", linewidths=3.0)
                ax.scatter(xs, ys, marker="x", s=size, c="white", linewidths=1.3)

    row = 0
    for n, (grid_in, grid_out) in enumerate(task.train, 1):
        panel(row, 0, grid_in, f"train {n} input")
        panel(row, 1, grid_out, f"train {n} output")
        row += 1
    by_attempt = {r.attempt: r for r in records}
    for j, (grid_in, grid_out) in enumerate(zip(task.test_inputs, task.test_outputs)):
        panel(row, 0, grid_in, f"test {j + 1} input")
        panel(row, 1, grid_out, f"test {j + 1} expected")
        for a in range(1, (k or 0) + 1):
            record = by_attempt.get(a)
            prediction = record.predictions[j] if record and j < len(record.predictions) else None
            verdict = ""
            if record is not None:
                verdict = f"{record.source}, {'correct' if record.correct[j] else 'wrong'}"
            panel(row, 1 + a, prediction, f"attempt {a}: {verdict}", grid_out)
        row += 1
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
    tmp.replace(out)
    return out
