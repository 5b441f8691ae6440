"""rps-evals: program-synthesis reliability evals for ARC-AGI.

The scoring core (data, prompt, parse, execution, scoring, compare, records) is shared by the CLI
(`rps-evals`), the Inspect AI tasks (`rps_evals/arc1.py`, `rps_evals/arc2.py`) and the lm-eval tasks
(`tasks/arc_prog`). Metric definitions: docs/metrics.md.
"""

__version__ = "0.1.0"
