"""`--config FILE` for the TrlParser-based sub-commands (`rps-train train`, `rps-train data`).

TrlParser takes `--config FILE` out of the arguments before argparse sees them, so argparse
neither lists it in `--help` nor checks the file: a missing file ended in a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path


class ConfigFileError(ValueError):
    """A --config file that cannot be used; the CLI prints it as one line and exits 2."""


def add_config_option(parser: argparse.ArgumentParser, what: str) -> None:
    """List --config in --help; SUPPRESS keeps it out of the parsed namespace (TrlParser consumes it)."""
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help=f"YAML file of {what} keys; command-line options override it")


def parse_with_config(parser, argv: list[str] | None, what: str) -> tuple:
    """parser.parse_args_and_config, with the config file checked first and named in every error."""
    import sys

    import yaml

    args = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(args):  # TrlParser only recognises the two-word form
        if arg.startswith("--config="):
            args[i:i + 1] = ["--config", arg.split("=", 1)[1]]
            break
    if "--config" in args:
        index = args.index("--config")
        if index + 1 >= len(args):
            raise ConfigFileError("--config needs a file name")
        path = Path(args[index + 1])
        if path.is_dir():
            raise ConfigFileError(f"{what} config {str(path)!r} is a directory, not a YAML file")
        if not path.is_file():
            raise ConfigFileError(f"{what} config {str(path)!r} does not exist")
        try:
            return parser.parse_args_and_config(args=args)
        except yaml.YAMLError as exc:
            raise ConfigFileError(f"{what} config {str(path)!r} is not valid YAML: "
                                  f"{' '.join(str(exc).split())}") from None
    return parser.parse_args_and_config(args=args)
