"""`rps-evals view` and `rps-evals draw`, checked as a person would see them.

Two hand-built runs over four ARC-AGI-1 training tasks, every outcome placed on purpose, so each
count below is worked out by hand from the table in `two_runs`. The browser test opens the report
in headless Chromium (Debian's `chromium`, installed by .ci/run) through Playwright.
"""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import pytest

from rps_evals.cli import main
from rps_evals.data import load_dataset
from rps_evals.records import write_run
from rps_evals.scoring import AttemptRecord, missing_record

DATASET = "arc1:training"
T1, T2, T3, T4 = "3c9b0459", "6150a2bd", "67a3c6ac", "25ff71a9"  # T4 has two test inputs
CHROMIUM = "/usr/bin/chromium"


def _record(task_id, attempt, source, status, predictions, origins, error="", **extra) -> AttemptRecord:
    task = load_dataset(DATASET).tasks[task_id]
    correct = [p == want for p, want in zip(predictions, task.test_outputs)]
    return AttemptRecord(task_id, attempt, source, status, predictions, origins, correct,
                         train_verified=status == "ok" and all(correct), error=error, **extra)


def _expected(task_id, j=0):
    return [row[:] for row in load_dataset(DATASET).tasks[task_id].test_outputs[j]]


def _program(body: str) -> str:
    return f"Reasoning:\nsee below\n\nPython program:\n```python\ndef transform(grid):\n    {body}\n```\n"


def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """Run A and run B. Per task, attempts 1 and 2:

    T1  A: program correct, program correct        B: error + JSON of the wrong size, missing
    T2  A: program with 2 wrong cells, error + JSON correct     B: program correct, program correct
    T3  A: timeout (no prediction), API error       B: program correct, cut at the token limit
    T4  A: program correct on both tests (x2)       B: the same
    """
    dataset = load_dataset(DATASET).select([T1, T2, T3, T4])
    two_wrong = _expected(T2)
    two_wrong[0][0], two_wrong[2][2] = 1, 1  # expected 0 and 6 there
    ok = lambda t, a: _record(t, a, "executed_program", "ok",  # noqa: E731
                              [_expected(t, j) for j in range(dataset.tasks[t].num_tests)],
                              ["program"] * dataset.tasks[t].num_tests, completion=_program("return grid"))
    run_a = [
        ok(T1, 1), ok(T1, 2),
        _record(T2, 1, "executed_program", "ok", [two_wrong], ["program"],
                completion=_program("return [r[::-1] for r in grid[::-1]]  # <script>alert(1)</script>")),
        _record(T2, 2, "json_fallback", "error", [_expected(T2)], ["json"],
                error="Traceback (most recent call last):\nValueError: red cells are not handled"),
        _record(T3, 1, "invalid", "timeout", [None], [None], error="transform took longer than 2 s"),
        AttemptRecord(T3, 2, "invalid", "no_program", [None], [None], [False], False, api_error="connection reset"),
        ok(T4, 1), ok(T4, 2),
    ]
    run_b = [
        _record(T1, 1, "json_fallback", "error", [[[7, 6], [4, 6]]], ["json"], error="ZeroDivisionError"),
        missing_record(dataset.tasks[T1], 2),
        ok(T2, 1), ok(T2, 2),
        ok(T3, 1),
        _record(T3, 2, "invalid", "no_program", [None], [None], stop_reason="max_tokens",
                completion="Reasoning:\nthe grid is mirrored, so"),
        ok(T4, 1), ok(T4, 2),
    ]
    a, b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    write_run(a, dataset, run_a, 2)
    write_run(b, dataset, run_b, 2)
    return a, b


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def report(tmp_path) -> Path:
    a, b = two_runs(tmp_path)
    out = tmp_path / "report.html"
    assert main(["view", str(a), str(b), "--out", str(out)]) == 0
    return out


def test_report_is_one_file_that_fetches_nothing(report):
    text = report.read_text(encoding="utf-8")
    # every picture inline: no URL the browser could fetch, no script at all
    for needle in ("http://", "https://", "<script", "src='http", 'src="http', "@import", "<link"):
        assert needle not in text, needle
    assert text.count("<section class=\"task") == 4
    assert "data:image/png;base64," in text  # the A/B plot is embedded
    # the model's text is shown escaped, never run
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_paired_counts_come_from_compare(report):
    text = report.read_text(encoding="utf-8")
    # attempts_from_executed_programs: A 5/8, B 5/8 (95% Wilson [30.6%, 86.3%] by hand)
    row = text.split("<td>attempts_from_executed_programs</td>", 1)[1].split("</tr>", 1)[0]
    cells = [c.split("</td>")[0] for c in row.split("<td>")[1:]]
    assert cells[0] == "5/8 (62.5%) <span class='dim ci'>[30.6%, 86.3%]</span>"
    assert cells[1] == "5/8 (62.5%) <span class='dim ci'>[30.6%, 86.3%]</span>"
    # both: T2a1 (a wrong program is still an executed one), T4a1, T4a2; only A: T1a1, T1a2;
    # only B: T2a2, T3a1; neither: T3a2
    assert cells[2:6] == ["3", "2", "2", "1"]
    assert cells[7] == "1"  # McNemar exact p of 2 vs 2 discordant attempts


def test_view_errors_write_nothing(tmp_path, capsys):
    a, _ = two_runs(tmp_path)
    out = tmp_path / "r.html"
    assert main(["view", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    other = tmp_path / "other"
    write_run(other, load_dataset(DATASET).select([T1]), [], 2)
    assert main(["view", str(a), str(other), "--out", str(out)]) == 2
    assert "different" in capsys.readouterr().err
    assert main(["view", str(a), str(a), str(a), "--out", str(out)]) == 2
    assert not out.exists()


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch, capsys):
    a, b = two_runs(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert main(["view", str(a), str(b), "--out", str(tmp_path / "r.html")]) == 2
    assert "pip install 'rps-evals[report]'" in capsys.readouterr().err
    assert main(["view", str(a), "--out", str(tmp_path / "one.html")]) == 0  # one run needs no plot


def test_hardcoded_flag_is_shown(tmp_path):
    dataset = load_dataset(DATASET).select([T1])
    flagged = _record(T1, 1, "executed_program", "ok", [_expected(T1)], ["program"],
                      completion=_program("return [[7, 6, 4], [4, 6, 6], [4, 4, 6]]"), hardcoded="literal_output")
    write_run(tmp_path / "run", dataset, [flagged], 2)
    assert main(["view", str(tmp_path / "run"), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.count("hardcoded: literal_output") == 1  # attempt 1 only; attempt 2 is missing


def test_a_huge_program_is_cut(tmp_path):
    dataset = load_dataset(DATASET).select([T1])
    # "def transform(grid):\n" (21) + 4 spaces + this line (99,999) + its newline = 100,025 characters
    body = "x = 1  # " + "y" * 99_990
    huge = _record(T1, 1, "executed_program", "ok", [_expected(T1)], ["program"], completion=_program(body))
    write_run(tmp_path / "run", dataset, [huge], 2)
    assert main(["view", str(tmp_path / "run"), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "the first 20,000 of 100,025 characters" in page and "y" * 20_000 not in page


def test_draw_png_has_the_layout_size(tmp_path, capsys):
    a, _ = two_runs(tmp_path)
    with_run, alone = tmp_path / "t4.png", tmp_path / "t1.png"
    assert main(["draw", T4, "--run", str(a), "--out", str(with_run)]) == 0
    # T4: 4 training pairs + 2 test inputs = 6 rows of 200 px + 50 px title; 2 + k=2 columns of 200 px
    assert _png_size(with_run.read_bytes()) == (800, 1250)
    assert main(["draw", T1, "--dataset", DATASET, "--out", str(alone)]) == 0
    assert _png_size(alone.read_bytes()) == (400, 1050)  # 4 + 1 rows, 2 columns
    from PIL import Image

    image = Image.open(alone).convert("RGB")
    # the middle of the first panel is the centre cell of T1's first training input, colour 1 (blue)
    assert load_dataset(DATASET).tasks[T1].train[0][0][1][1] == 1
    assert image.getpixel((100, 155)) == (0x00, 0x74, 0xD9)
    assert main(["draw", "00000000", "--run", str(a), "--out", str(tmp_path / "x.png")]) == 2
    assert main(["draw", T1, "--out", str(tmp_path / "x.png")]) == 2
    assert "either --run" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
def test_report_in_a_real_browser(report, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    requests = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())
            shot = page.screenshot()
            assert _png_size(shot) == (1280, 900)
            assert requests == [report.as_uri()]  # the page itself and nothing else

            visible_sections = lambda: page.eval_on_selector_all(  # noqa: E731
                "section.task", "els => els.filter(e => getComputedStyle(e).display !== 'none').map(e => e.id)")
            assert visible_sections() == [f"t-{t}" for t in (T1, T2, T3, T4)]
            # drawn predictions: A 2 + 2 + 0 + 4, B 1 + 2 + 1 + 4 (a missing or timed-out attempt draws none)
            assert page.locator(".attempt svg.grid").count() == 16
            assert page.locator(".attempt").count() == 16
            # training pairs 2 x (4 + 2 + 3 + 4) and test input + expected 2 x (1 + 1 + 1 + 2), all drawn
            assert page.locator("section.task > .row svg.grid").count() == 26 + 10
            # T2 attempt 1 of A: its two wrong cells crossed, and the cross is what a person sees (white)
            marked = page.locator(f"#t-{T2} .run.A .attempt svg.grid[data-wrong='2']")
            assert marked.count() == 1 and marked.locator("path.wrong").count() == 1
            # off-screen sections are not rendered (content-visibility: auto) until scrolled to
            marked.scroll_into_view_if_needed()
            page.wait_for_function(f"() => document.querySelector('#t-{T2} .run.A .attempt').innerText.length > 0")
            assert page.locator(f"#t-{T2} .run.A .attempt").first.inner_text().count("2 wrong cells") == 1
            crop = Image.open(io.BytesIO(marked.screenshot())).convert("RGB")
            colours = {c for _, c in crop.getcolors(1 << 16)}
            assert (255, 255, 255) in colours and (0x25, 0x25, 0x25) in colours  # cross on black cells
            assert page.locator(f"#t-{T1} .run.B svg.grid[data-wrong='size']").count() == 1
            assert page.locator("script").count() == 0
            header = page.locator("table").nth(1).inner_text()
            assert "5/8 (62.5%)\n[30.6%, 86.3%]" in header

            page.locator("label[for=f-timeout]").click()
            assert visible_sections() == [f"t-{T3}"]
            assert page.eval_on_selector_all(
                "#index a", "els => els.filter(e => getComputedStyle(e).display !== 'none').length") == 1
            page.locator("label[for=f-error]").click()
            assert visible_sections() == [f"t-{T1}", f"t-{T2}"]
            page.locator("label[for=f-onlyB-solved]").click()
            assert visible_sections() == [f"t-{T3}"]
            page.locator("label[for=f-onlyA-allexec]").click()
            assert visible_sections() == [f"t-{T1}"]
            page.screenshot(path=str(tmp_path / "filtered.png"))
            page.locator("label[for=f-all]").click()
            assert len(visible_sections()) == 4
        finally:
            browser.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
def test_paired_table_fits_or_scrolls_in_its_own_box(report):
    """At 1200 px the paired table's last columns (B - A, p) are on screen and the page does not
    scroll sideways; narrower, the table scrolls inside its box and the page still does not."""
    playwright = pytest.importorskip("playwright.sync_api")
    page_scrolls_sideways = "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(report.as_uri())
            table = page.locator("table.paired")
            box = table.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 1200
            last_header = table.locator("th").last
            assert last_header.inner_text().replace("\n", " ") == "exact McNemar p"
            header_box = last_header.bounding_box()
            assert header_box["x"] + header_box["width"] <= 1200
            assert not page.evaluate(page_scrolls_sideways)

            page.set_viewport_size({"width": 600, "height": 900})
            assert not page.evaluate(page_scrolls_sideways)
            holder = page.locator(".tablebox", has=page.locator("table.paired"))
            assert holder.evaluate("e => e.scrollWidth > e.clientWidth && getComputedStyle(e).overflowX === 'auto'")
            assert holder.bounding_box()["x"] + holder.bounding_box()["width"] <= 600
        finally:
            browser.close()


@pytest.fixture
def group_report(tmp_path) -> Path:
    """Replicates: A = runs a, b; B = runs b, a, b (copies, so each label is its own run)."""
    import shutil

    a, b = two_runs(tmp_path)
    sides = ([a, b], [b, a, b])
    copies = [[], []]
    for side, paths in enumerate(sides):
        for i, path in enumerate(paths):
            target = tmp_path / "groups" / f"{'AB'[side]}{i + 1}"
            shutil.copytree(path, target)
            copies[side].append(str(target))
    out = tmp_path / "groups.html"
    assert main(["view", *copies[0], "--vs", *copies[1], "--out", str(out)]) == 0
    return out


def test_group_report_numbers_come_from_compare_groups(group_report):
    text = group_report.read_text(encoding="utf-8")
    # attempts_from_executed_programs is 5/8 in both runs: every dot at 62.5%, B - A exactly 0
    row = text.split("data-metric='attempts_from_executed_programs'>", 1)[1].split("</tr>", 1)[0]
    assert row.count("<circle class='run a'") == 2 and row.count("<circle class='run b'") == 3
    assert row.count("cx='149.0'") == 5  # 4 + 0.625 * 232
    assert "<td>62.5%</td><td>62.5%</td>" in row and "+0.0" in row
    assert "http" not in text.split("<main", 1)[0].replace("http-equiv", "")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
def test_group_report_in_a_real_browser(group_report):
    playwright = pytest.importorskip("playwright.sync_api")
    requests = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(group_report.as_uri())
            assert requests == [group_report.as_uri()]
            rows = page.locator("table.groups tr[data-metric]")
            assert rows.first.get_attribute("data-metric") == "attempts_from_executed_programs"
            assert rows.first.get_attribute("class") == "primary"
            # every metric: 2 dots for A, 3 for B, one interval bar, each drawn with a size on screen
            for i in range(rows.count()):
                assert rows.nth(i).locator("circle.run.a").count() == 2
                assert rows.nth(i).locator("circle.run.b").count() == 3
                assert rows.nth(i).locator("svg.interval line.ci").bounding_box() is not None
            # program_timeouts: A1 (run a) 1/8, A2 (run b) 0/8: two dots apart; the hover text names the run
            timeouts = page.locator("tr[data-metric='program_timeouts'] circle.run.a")
            assert [timeouts.nth(i).get_attribute("cx") for i in range(2)] == ["33.0", "4.0"]  # 4 + rate * 232
            assert timeouts.nth(0).locator("title").text_content() == "A1: 12.5%"
            # B - A = 1/24 - 1/16, an interval across zero: the bar crosses the zero line
            zero = float(page.locator("tr[data-metric='program_timeouts'] line.zero").get_attribute("x1"))
            bar = page.locator("tr[data-metric='program_timeouts'] line.ci")
            assert float(bar.get_attribute("x1")) < zero < float(bar.get_attribute("x2"))
            assert page.locator("section.task").count() == 4  # the tasks of A1 and B1
        finally:
            browser.close()
