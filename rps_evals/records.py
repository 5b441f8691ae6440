"""Files of a run: the responses file that goes in, and the run directory that comes out.

A run directory holds `results.json` (the metrics), `attempts.jsonl` (one scored record per
attempt, every (task, attempt) of the dataset included) and `submission.json` (ARC Prize format).
Every front end writes it through `write_run`, so `compare` and `gate` work on any of them.
Files are written to temporary names and renamed into place, so a failure leaves no half file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from rps_evals.data import Dataset
from rps_evals.provenance import usage_summary
from rps_evals.scoring import STOP_REASONS, AttemptRecord, Response, complete_records, submission, summarize


class InputError(ValueError):
    """Bad user input (a responses file, a run directory): the message names what is wrong."""


# The fields of a responses line (docs/metrics.md, "The responses file"). Any other field is an
# error: a misspelt "completon" or "eror" would otherwise be read as absent and score a silent zero.
RESPONSE_FIELDS = ("task_id", "attempt", "completion", "reasoning", "stop_reason", "error",
                   "output_tokens", "reasoning_tokens", "input_tokens")


def parse_response_line(obj: Any, where: str) -> Response:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = [key for key in obj if key not in RESPONSE_FIELDS]
    if unknown:
        import difflib

        close = difflib.get_close_matches(str(unknown[0]), RESPONSE_FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known fields: {', '.join(RESPONSE_FIELDS)})"
        raise InputError(f"{where}: unknown field {unknown[0]!r}{hint}")
    for key in ("task_id", "attempt"):
        if key not in obj:
            raise InputError(f"{where}: missing field {key!r}")
    task_id, attempt = obj["task_id"], obj["attempt"]
    if not isinstance(task_id, str):
        raise InputError(f"{where}: task_id must be a string")
    if isinstance(attempt, bool) or not isinstance(attempt, int):
        raise InputError(f"{where}: attempt must be an integer (1-based)")
    completion, stop_reason, error = obj.get("completion"), obj.get("stop_reason"), obj.get("error")
    if completion is not None and not isinstance(completion, str):
        raise InputError(f"{where}: completion must be a string or null")
    if stop_reason is not None and stop_reason not in STOP_REASONS:
        raise InputError(f"{where}: stop_reason must be one of {', '.join(STOP_REASONS)} or null")
    if error is not None and not isinstance(error, str):
        raise InputError(f"{where}: error must be a string or null")
    reasoning = obj.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        raise InputError(f"{where}: reasoning must be a string or null")
    tokens = {}
    for key in ("output_tokens", "reasoning_tokens", "input_tokens"):
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InputError(f"{where}: {key} must be a non-negative integer or null")
        tokens[key] = value
    return Response(task_id, attempt, completion, stop_reason, error, reasoning=reasoning, **tokens)


def check_responses(responses: Iterable[tuple[str, Response]], dataset: Dataset | None = None,
                    k: int | None = None) -> list[Response]:
    """Reject duplicates and, given a dataset and k, unknown tasks and attempts outside 1..k;
    `where` names each response in the error."""
    seen: dict[tuple[str, int], str] = {}
    out = []
    for where, response in responses:
        if dataset is not None and response.task_id not in dataset.tasks:
            raise InputError(f"{where}: task id {response.task_id!r} is not in {dataset.name}")
        if response.attempt < 1 or (k is not None and response.attempt > k):
            raise InputError(f"{where}: attempt {response.attempt} is outside 1..{k or 'k'}"
                             + (f" (--attempts {k})" if k else ""))
        key = (response.task_id, response.attempt)
        if key in seen:
            raise InputError(f"{where}: duplicate response for task {key[0]} attempt {key[1]} "
                             f"(first at {seen[key]})")
        seen[key] = where
        out.append(response)
    return out


def read_json_lines(path: str | Path) -> Iterator[tuple[str, Any]]:
    """(file:line, decoded JSON) for each non-blank line of a JSONL file, read line by line (a K = 256
    responses file is hundreds of MB, never held twice); an unreadable file or line is an InputError."""
    path = Path(path)
    try:
        lines = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read responses file {path}: {exc.strerror or exc}") from None
    with lines:
        try:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    yield where, json.loads(line)
                except ValueError as exc:
                    raise InputError(f"{where}: not valid JSON ({exc})") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start} of a line)") from None


def read_response_lines(path: str | Path) -> Iterator[tuple[str, Response]]:
    """(file:line, Response) for each non-blank line of a responses JSONL file."""
    for where, obj in read_json_lines(path):
        yield where, parse_response_line(obj, where)


def read_responses(path: str | Path, dataset: Dataset | None = None, k: int | None = None) -> list[Response]:
    """Read and check a responses JSONL file (one object per attempt)."""
    return check_responses(read_response_lines(path), dataset, k)


def check_run_dir(out_dir: str | Path) -> Path:
    """A run directory may be new or an existing directory (its files are replaced), not a file."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file; give a run directory (new or existing) to write into")
    return out_dir


def _atomic_write(path: Path, text: str | Iterable[str]) -> Path:
    """`text` (or its pieces, written one by one) in a temporary file beside `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines([text] if isinstance(text, str) else text)
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def write_run(out_dir: str | Path, dataset: Dataset, records: Iterable[AttemptRecord], k: int,
              provenance: dict[str, Any] | None = None, usage: dict[str, Any] | None = None,
              status: dict[str, Any] | None = None, **summary_options) -> dict[str, Any]:
    """Write results.json, attempts.jsonl and submission.json; return the results document.

    `provenance` (rps_evals.provenance.build_provenance) goes in as given; `usage` holds what only
    the front end knows (wall_time_s, token totals) and the per-attempt token counts come from the
    records; `status` records a front end's run that did not end well (`report --allow-errors`).
    """
    complete = complete_records(dataset, records, k)
    result = summarize(dataset, complete, k, **summary_options)
    if provenance is not None:
        result["provenance"] = provenance
        result["usage"] = usage_summary(complete, **(usage or {}))
    if status is not None:
        result["status"] = status
    texts = {
        "results.json": json.dumps(result, indent=2) + "\n",
        "attempts.jsonl": (json.dumps(r.to_dict()) + "\n" for r in complete),  # streamed: the largest file
        "submission.json": json.dumps(submission(dataset, complete, k, result["selection"])) + "\n",
    }
    out_dir = check_run_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    temps: dict[str, Path] = {}
    try:
        for name, text in texts.items():
            temps[name] = _atomic_write(out_dir / name, text)
    except BaseException:  # nothing half-written: no file replaced until every one is complete
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise
    for name, tmp in temps.items():
        os.replace(tmp, out_dir / name)
    return result


def read_run(run_dir: str | Path) -> tuple[dict[str, Any], list[AttemptRecord]]:
    """Load a run directory written by write_run."""
    run_dir = Path(run_dir)
    try:
        result = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
        records = [
            AttemptRecord.from_dict(json.loads(line))
            for line in (run_dir / "attempts.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{run_dir} is not a run directory (results.json + attempts.jsonl): {exc}") from None
    return result, records


def read_attempts(path: str | Path) -> list[AttemptRecord]:
    """The records of an attempts.jsonl file (e.g. to pick rejected responses for DPO)."""
    path = Path(path)
    if path.is_dir():
        path = path / "attempts.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [AttemptRecord.from_dict(json.loads(line)) for line in lines if line.strip()]
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read attempt records from {path}: {exc}") from None
