"""`rps-train data ...` builds the DPO data; `rps-train train --config FILE` trains both stages.

Sub-commands import their heavy dependencies lazily, so `rps-train data --help` needs no torch.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = ("usage: rps-train {data,train} ...\n"
             "  data   build the stage-1/stage-2 DPO data sets (rps-train data --help)\n"
             "  train  train stage 1 and stage 2 from a YAML config (rps-train train --help)")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "data":
        from rps_train.data import main as data_main

        return data_main(rest)
    if command == "train":
        from rps_train.train import main as train_main

        return train_main(rest)
    print(f"unknown command {command!r}\n{usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
