"""`rps-evals report`: turn a front end's output into the core's run (dataset, records, k), so the
run directory, `compare` and `gate` are the same whichever front end produced it.

Nothing is parsed or executed again: the front ends stored the scored attempt records when they
ran. Each front end contributes one (what it reads, detect, read) row to FRONT_ENDS; a reader
imports its framework only when it runs, so reporting one kind of output never needs the other's.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any, Callable

from rps_evals import lmeval
from rps_evals.data import Dataset, DatasetError, load_dataset
from rps_evals.records import InputError
from rps_evals.scoring import AttemptRecord

FrontEndRun = tuple[Dataset, list[AttemptRecord], int, dict[str, Any]]


def read_front_end_run(path: str | Path) -> FrontEndRun:
    """(dataset, attempt records, k, options for summarize) of an Inspect log or lm-eval output."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    for _name, detect, read in FRONT_ENDS:
        if detect(path):
            return read(path)
    kinds = "; ".join(name for name, _, _ in FRONT_ENDS)
    raise InputError(f"{path} is not an output this command reads ({kinds})")


# -- Inspect AI ------------------------------------------------------------------------------------

def is_inspect_log(path: Path) -> bool:
    """An Inspect log: a .eval archive, or a .json log with Inspect's top-level fields."""
    if path.is_file() and path.suffix == ".eval":
        return zipfile.is_zipfile(path)
    if path.is_file() and path.suffix == ".json":
        try:
            with path.open("rb") as f:
                head = f.read(256).decode("utf-8", "replace")
        except OSError:
            return False
        return re.match(r'\s*\{\s*"version"\s*:\s*\d+\s*,\s*"status"\s*:', head) is not None
    return False


def read_inspect_log(path: Path) -> FrontEndRun:
    """The run recorded in an Inspect log of rps_evals/arc1 or arc2: the records come from each
    sample's score metadata; planned samples with no score count as missing attempts."""
    from inspect_ai.log import read_eval_log

    from rps_evals.inspect_task import SCORER_NAME

    try:
        log = read_eval_log(str(path))
    except Exception as exc:  # a damaged or foreign file
        raise InputError(f"cannot read Inspect log {path}: {exc}") from None
    meta = (log.eval.metadata or {}).get("rps_evals")
    if not meta:
        raise InputError(f"{path} is an Inspect log of task {log.eval.task!r}, not of rps_evals/arc1 or arc2")
    try:
        dataset = load_dataset(meta["dataset"])
    except DatasetError as exc:
        raise InputError(f"{path}: {exc}") from None
    if meta.get("dataset_hash") and meta["dataset_hash"] != dataset.file_hash:
        raise InputError(f"{path} was scored on another version of {dataset.name} "
                         f"(data file hash {meta['dataset_hash'][:12]}..., installed {dataset.file_hash[:12]}...)")
    if (log.eval.config.epochs or 1) > 1:
        raise InputError(f"{path} ran {log.eval.config.epochs} epochs; use -T attempts=K for K attempts per task")
    planned = [str(i) for i in (log.eval.dataset.sample_ids or [])]
    if not planned:
        raise InputError(f"{path} records no sample ids")
    try:
        dataset = dataset.select(planned)
    except DatasetError as exc:
        raise InputError(f"{path}: {exc}") from None
    k = int(meta["attempts"])
    records: list[AttemptRecord] = []
    for sample in log.samples or []:
        score = (sample.scores or {}).get(SCORER_NAME)
        if score is None or not score.metadata or "attempts" not in score.metadata:
            continue  # never scored: complete_records makes its attempts `missing`
        records.extend(AttemptRecord.from_dict(d) for d in score.metadata["attempts"])
    if log.samples is None:
        raise InputError(f"{path} has no samples (was it written with --no-log-samples?)")
    return dataset, records, k, {"prompt_version": meta.get("prompt_version", "unknown")}


# (what it reads, detect(path), read(path)): the first row whose detect is true reads the output.
FRONT_ENDS: list[tuple[str, Callable[[Path], bool], Callable[[Path], FrontEndRun]]] = [
    ("an Inspect log (.eval or .json) of rps_evals/arc1 or arc2", is_inspect_log, read_inspect_log),
    ("lm-eval output (--output_path, --log_samples) of arc_prog", lmeval.is_lmeval_output, lmeval.read_lmeval_output),
]
