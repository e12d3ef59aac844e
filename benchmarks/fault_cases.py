"""List every fault-injection case (tests/faults/) with its outcome, and the totals.

    PYTHONPATH=src python benchmarks/fault_cases.py            # runs the suite (< 1 min idle)
    PYTHONPATH=src python benchmarks/fault_cases.py --json out.json

Each case is one test of ``tests/faults`` (its docstring says the fault and what must happen);
"seen" is the one line the user got (error or warning). A case holds when its test passes:
the refusal or recovery happened and, where marked "nothing lost", the user's files (or the
store / encoder checksums against an uninterrupted run) were verified unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cases() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.json"
        env = dict(os.environ, ECGSSL_FAULT_REPORT=str(report))
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:warnings",
                               "-p", "no:cacheprovider", str(REPO / "tests" / "faults")],
                              cwd=str(REPO), env=env, capture_output=True, text=True)
        if not report.exists():
            sys.exit(f"the fault suite did not run:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        return json.loads(report.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the cases to this JSON file")
    args = parser.parse_args()
    cases = run_cases()
    width = max(len(c["case"]) for c in cases)
    for c in cases:
        mark = "held" if c["outcome"] == "passed" else c["outcome"].upper()
        lost = " [nothing lost: verified]" if c.get("nothing_lost") else ""
        print(f"{mark:<6} {c['case']:<{width}}{lost}")
        print(f"       fault: {c['description']}")
        if c.get("seen"):
            print(f"       seen:  {c['seen'][:160]}")
    by_class = Counter(c["fault_class"] for c in cases)
    held = sum(c["outcome"] == "passed" for c in cases)
    verified = sum(bool(c.get("nothing_lost")) and c["outcome"] == "passed" for c in cases)
    print()
    print("cases per class: " + ", ".join(f"{k} {v}" for k, v in sorted(by_class.items())))
    print(f"{len(cases)} cases tried, {held} held, {len(cases) - held} failed; "
          f"{verified} with files or checksums verified unchanged (nothing lost)")
    if args.json:
        Path(args.json).write_text(json.dumps(cases, indent=1))
    return 0 if held == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
