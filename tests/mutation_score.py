"""Prints the mutation score of the last ``mutmut run`` (``make mutation``): per module, then in all.

    python tests/mutation_score.py [--survivors]

A mutant counts as caught only when a test failed on it. "survived", "no tests", a run out of time ("timeout") and a
run ended by a signal ("segfault": mutmut's name for any signal) count against the score: a hang or a crash is not a
test that noticed. The score is caught / (every mutant that ran); re-run one by name with ``mutmut run
--max-children 1 NAME``.
"""

import argparse
import glob
import json
import os
import sys
from collections import Counter

from mutmut.stats import status_by_exit_code

CAUGHT = ("killed", "caught by type check")
NOT_RUN = ("not checked", "skipped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--survivors", action="store_true", help="list the mutants no test caught")
    args = parser.parse_args()
    metas = sorted(glob.glob(os.path.join("mutants", "**", "*.py.meta"), recursive=True))
    if not metas:
        print("no mutmut results in mutants/: run `make mutation`", file=sys.stderr)
        return 2
    total: Counter = Counter()
    for meta in metas:
        with open(meta) as handle:
            results = json.load(handle)["exit_code_by_key"]
        statuses = Counter(status_by_exit_code[code] for code in results.values())
        caught = sum(statuses[s] for s in CAUGHT)
        ran = sum(n for s, n in statuses.items() if s not in NOT_RUN)
        total.update(caught=caught, ran=ran, not_run=sum(statuses[s] for s in NOT_RUN))
        module = os.path.relpath(meta, "mutants")[:-len(".meta")]
        print(f"{module:40s} {caught:4d} / {ran:4d} caught  {dict(statuses)}")
        if args.survivors:
            for key, code in sorted(results.items()):
                if status_by_exit_code[code] not in CAUGHT:
                    print(f"    {status_by_exit_code[code]:9s} {key}")
    print(f"mutation score: {total['caught'] / max(total['ran'], 1):.3f} ({total['caught']} of {total['ran']} mutants "
          f"caught; {total['not_run']} not run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
