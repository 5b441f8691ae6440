"""`rps-train study|data|train|merge|tiny-model ...`; `rps-train study --config FILE --out DIR` runs them all.

Sub-commands import their heavy dependencies lazily, so `rps-train data --help` needs no torch.
"""

from __future__ import annotations

import sys

USAGE = """usage: rps-train {study,data,train,gpu-check,merge,tiny-model} ...
  study       the whole study, resumable: rejected answers, data, RPS, EPS, evaluation, comparison
              (rps-train study --config configs/study_tiny.yaml --out runs/tiny-study [--dry-run])
  data        build the stage-1/stage-2 DPO data sets (rps-train data --help)
  train       train stage 1 and stage 2 from a YAML config (rps-train train --help)
  gpu-check   will a training config fit one GPU: analytic estimate, then measured steps per length
              (rps-train gpu-check --config configs/rps_qwen3_8b.yaml --out runs/gpu-check [--tiny])
  merge       merge a LoRA adapter into its base model (for Inspect's hf/ provider on CPU)
  tiny-model  write a tiny random Qwen3 and tokenizer (offline runs and tests)"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "study":
        from rps_train.study import main as run
    elif command == "data":
        from rps_train.data import main as run
    elif command == "train":
        from rps_train.train import main as run
    elif command == "gpu-check":
        from rps_train.gpu_check import main as run
    elif command == "merge":
        from rps_train.study import merge_main as run
    elif command == "tiny-model":
        from rps_train.tiny import main as run
    else:
        print(f"unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
