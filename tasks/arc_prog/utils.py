"""lm-eval loads this file by path for the `!function utils.*` tags in these YAMLs.

It only re-exports: the glue lives in the installed package (rps_evals.lmeval), where it is
importable and tested, so a copy of this folder never drifts from the scoring core.
"""

from rps_evals.lmeval import (
    ArcProgTask,
    KeepAllAttempts,
    count_records,
    doc_to_target,
    doc_to_text,
    load_docs,
    pooled_rate,
    process_results,
)

__all__ = ["ArcProgTask", "KeepAllAttempts", "count_records", "doc_to_target", "doc_to_text", "load_docs",
           "pooled_rate", "process_results"]
