"""veRL's own SandboxFusion client against `azr-sandbox serve --http`.

Usage: verl_sandbox_fusion.py URL

Loads `verl.utils.reward_score.sandbox_fusion` from the installed `verl` package (its
package `__init__` pulls Ray and torch; this module needs only `requests`), points it at
the daemon's `/run_code` and scores completions the way veRL's reward loop does. Prints one
JSON object with every score and per-case status.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any


def verl_sandbox_fusion() -> ModuleType:
    dist = importlib.metadata.distribution("verl")
    base = Path(str(dist.locate_file("verl/utils/reward_score/sandbox_fusion")))
    spec = importlib.util.spec_from_file_location(
        "verl_sandbox_fusion", base / "__init__.py", submodule_search_locations=[str(base)]
    )
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {base}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def fenced(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```\n"


DOUBLE = "n = int(input())\nprint(n * 2)"
TRIPLE = "n = int(input())\nprint(n * 3)"
STDIN_CASES = {"inputs": ["3\n", "5\n", "-4\n"], "outputs": ["6\n", "10\n", "-8\n"]}

# LeetCode style: veRL wraps the function in a script that reads JSON lines from stdin.
ADD = "def add(a, b):\n    return a + b"
SOLUTION = "class Solution:\n    def add(self, a, b):\n        return a + b"
SUB = "def add(a, b):\n    return a - b"
FN_CASES = {
    "fn_name": "add",
    "inputs": ["1\n2", "[1]\n[2]", '"a"\n"b"'],
    "outputs": ["3", "[1, 2]", "ab"],
}


def score(sf: ModuleType, url: str, completion: str, cases: dict[str, Any]) -> dict[str, Any]:
    result, metadata = sf.compute_score(
        url, threading.Semaphore(8), 256, completion, json.dumps(cases), timeout=5
    )
    return {
        "score": result,
        "statuses": [m.get("status") for m in metadata],
        "stderr": [
            ((m.get("api_response") or {}).get("run_result") or {}).get("stderr") for m in metadata
        ],
    }


def main() -> None:
    url = sys.argv[1]
    sf = verl_sandbox_fusion()
    result = {
        "stdin_right": score(sf, url, fenced(DOUBLE), STDIN_CASES),
        "stdin_wrong": score(sf, url, fenced(TRIPLE), STDIN_CASES),
        "fn_right": score(sf, url, fenced(ADD), FN_CASES),
        "fn_solution_class": score(sf, url, fenced(SOLUTION), FN_CASES),
        "fn_wrong": score(sf, url, fenced(SUB), FN_CASES),
        "runtime_error": score(sf, url, fenced("raise ValueError('boom')"), STDIN_CASES),
        "timeout": score(
            sf, url, fenced("while True:\n    pass"), {"inputs": [""], "outputs": ["1"]}
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
