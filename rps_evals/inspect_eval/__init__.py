"""The Inspect AI front end: the task (`task.py`), its solver and scorer (`solver.py`, `scorer.py`),
a log's counts (`counts.py`), the replay model (`replay.py`) and what any model may learn of a
request (`generation.py`), the glue to Inspect's own sandboxes (`sandbox.py`) and the entry point
Inspect loads (`registry.py`).
`rps_evals/arc1.py` and `arc2.py` stay one level up so `inspect eval rps_evals/arc2.py` finds them."""

from rps_evals.versions import require_supported

require_supported("inspect-ai")  # we read a few of its internals (active model, sandbox classes)
