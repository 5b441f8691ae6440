"""Shared pieces of the lm-eval tests: a scripted LM and a recorded responses file."""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TASKS_DIR = REPO / "tasks"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
for _key, _value in OFFLINE_ENV.items():  # these tests never reach a hub
    os.environ.setdefault(_key, _value)

SCRIPTED_MODEL = "rps-scripted"


def register_scripted_model() -> None:
    """Register an lm-eval LM that answers from a responses JSONL file (once per process)."""
    from lm_eval.api.model import LM
    from lm_eval.api.registry import model_registry, register_model

    if SCRIPTED_MODEL in model_registry:
        return

    @register_model(SCRIPTED_MODEL)
    class ScriptedLM(LM):
        """Replays recorded completions by (task_id, attempt). lm-eval sends the k repeats of a doc
        as k consecutive copies of one request, so the n-th copy seen is attempt n. A recorded API
        error comes back as lm-eval's API backends return one: the empty-answer placeholder."""

        def __init__(self, responses: str, **_ignored):
            super().__init__()
            self.rows = {}
            for line in Path(responses).read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.rows[(row["task_id"], row["attempt"])] = row
            self.calls = 0

        def generate_until(self, requests, disable_tqdm=False):
            seen: dict[str, int] = {}
            out = []
            for request in requests:
                task_id = request.doc["task_id"]
                seen[task_id] = seen.get(task_id, 0) + 1
                row = self.rows.get((task_id, seen[task_id]))
                out.append("" if row is None or row["completion"] is None else row["completion"])
            self.calls += len(requests)
            return out

        def loglikelihood(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError


def _fence(lang: str, body: str) -> str:
    return f"```{lang}\n{body}\n```"


def program(body: str) -> str:
    return "Reasoning:\nsee the code\n\nPython program:\n" + _fence("python", body) + "\n"


def predictions(grids) -> str:
    return "Predicted test outputs:\n" + _fence("json", json.dumps(grids)) + "\n"


def lookup_program(task) -> str:
    """A program that is right on every test and training input of `task` (and the identity elsewhere)."""
    table = {json.dumps(i): o for i, o in list(zip(task.test_inputs, task.test_outputs)) + task.train}
    return program(f"import json\nTABLE = {table!r}\n\ndef transform(grid):\n"
                   "    return TABLE.get(json.dumps(grid), grid)")


def pick_tasks(dataset) -> tuple[list[int], list]:
    """Doc indices and Tasks for recorded_rows: five one-test tasks and two with several test inputs."""
    tasks = list(dataset.tasks.values())
    single = [i for i, t in enumerate(tasks) if t.num_tests == 1][:5]
    multi = [i for i, t in enumerate(tasks) if t.num_tests > 1][:2]
    order = [single[0], multi[0], *single[1:], multi[1]]
    return sorted(order), [tasks[i] for i in order]


def recorded_rows(tasks: list) -> list[dict]:
    """Two attempts for seven tasks (see pick_tasks), covering every way an attempt can end."""
    t1, t2, t3, t4, t5, t6, t7 = tasks
    assert t2.num_tests > 1 and t7.num_tests > 1
    crash = program("def transform(grid):\n    return 1 / 0")
    loop = program("def transform(grid):\n    while True:\n        pass")
    longest = max(len(lookup_program(t)) for t in (t1, t5, t7))
    truncated = ("Reasoning:\n" + "I keep checking every example cell by cell. " * (longest // 20 + 40)
                 + "\n\nPython program:\n```python\ndef transform(grid):\n    return [row[::-1] for row in")
    rows = [
        (t1, 1, lookup_program(t1)),                                            # correct, train-verified
        (t1, 2, program("def transform(grid):\n    return grid")),              # valid, wrong
        (t2, 1, crash + predictions(t2.test_outputs)),                          # error, JSON right
        (t2, 2, loop),                                                          # timeout, nothing else
        (t3, 1, program("import numpy as np\ndef transform(grid):\n    return np.array(grid) > 0")),  # bools
        (t3, 2, program("def transform(grid):\n    return [[1.0]]") + predictions([[[1]]] * t3.num_tests)),
        (t4, 1, None),                                                          # API error
        (t4, 2, truncated),                                                     # cut at the token limit
        (t5, 1, "<think>it is a lookup</think>Reasoning: copy\n" + predictions(t5.test_outputs)),
        (t5, 2, "<think>still thinking about " + lookup_program(t5)),           # unclosed think
        (t6, 1, "I cannot solve this."),                                        # garbage
        (t6, 2, "```py\ndef transform(grid):\n    return [[int(c != 0) for c in row] for row in grid]\n```"),
        # several test inputs: right on input 1, raises on input 2 where a (wrong) JSON grid fills in
        (t7, 1, program(f"def transform(grid):\n    if grid == {t7.test_inputs[0]!r}:\n"
                        f"        return {t7.test_outputs[0]!r}\n    raise ValueError('no rule')")
         + predictions([[[0]]] * t7.num_tests)),
        (t7, 2, lookup_program(t7)),
    ]
    return [{"task_id": t.task_id, "attempt": a, "completion": c,
             "error": "HTTP 503 after 3 retries" if c is None else None} for t, a, c in rows]


def write_responses(path: Path, rows: list[dict], tokenizer) -> int:
    """Write the rows with the stop reasons and output token counts lm-eval's front end will
    derive with the tokenizer; return max_gen_toks.

    The limit is the truncated answer's token count, so exactly that attempt hit it."""
    counts = {(r["task_id"], r["attempt"]): len(tokenizer.encode(r["completion"], add_special_tokens=False))
              for r in rows if r["completion"] is not None}
    limit = max(counts.values())
    assert sorted(counts.values()).count(limit) == 1, "the truncated answer must be the longest"
    with path.open("w") as f:
        for r in rows:
            n = counts.get((r["task_id"], r["attempt"]))
            stop = None if n is None else ("max_tokens" if n >= limit else "stop")
            f.write(json.dumps({**r, "stop_reason": stop, "output_tokens": n}) + "\n")
    return limit
