"""Time the parser on degenerate 150,000-character completions (issue 10: well under a second).

Each case repeats a fragment that used to make the parser rescan the rest of the text per repetition
(an opening fence never closed, `<think>` never closed). The baseline, timed on the same text in the
same run, is one linear pass (`str.splitlines`); the ratio says how many such passes parsing costs.
Usage: python benchmarks/parse_speed.py [--repeat 5]
"""

import argparse
import os
import platform
import time

from rps_evals.parse import parse_response

CASES = {
    "unclosed ```python fences": "```python\ndef transform(grid):\n",
    "unclosed <think>": "<think>hmm, let me reconsider ",
    "bare fences": "```\n",
    "bare fences before code": "```\ndef transform(grid):\n",
    "glued fences": "```Final answer:\n",
    "prediction labels": "Predicted test outputs: [[",
    "prose": "I need to reconsider the pattern in the grid. ",
}
LENGTH = 150_000


def best_of(repeat, fn):
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'case':<28}{'parse':>10}{'baseline':>12}{'ratio':>8}")
    for name, fragment in CASES.items():
        text = (fragment * (LENGTH // len(fragment) + 1))[:LENGTH]
        parse = best_of(args.repeat, lambda: parse_response(text, 2))
        baseline = best_of(args.repeat, lambda: text.splitlines())
        print(f"{name:<28}{parse * 1e3:>8.2f}ms{baseline * 1e3:>10.2f}ms{parse / baseline:>8.1f}")


if __name__ == "__main__":
    main()
