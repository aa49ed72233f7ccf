"""SandboxFusion's own client (`sandbox-fusion` on PyPI) sending files to `serve --http`.

Usage: sandbox_fusion_files.py ENDPOINT

Graders that send files, as SandboxFusion's users write them: a harness module the program
imports beside test cases in JSON (LiveCodeBench's layout), a program writing a file that
is fetched back, directories, a null entry (skipped), and requests that must fail (a path
that leaves the working directory, bad base64 past nothing). Prints one JSON object.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from sandbox_fusion import RunCodeRequest, run_code, set_sandbox_endpoint

HARNESS = '''
import json


def run_cases(solve, path):
    """Calls `solve` on every case of the JSON file at `path`; returns pass/fail per case."""
    with open(path) as f:
        cases = json.load(f)
    return [solve(*case["input"]) == case["output"] for case in cases]
'''

CASES = [
    {"input": [1, 2], "output": 3},
    {"input": [10, -4], "output": 6},
    {"input": ["a", "b"], "output": "ab"},
]

SOLUTION = """
import os

from harness import run_cases


def add(a, b):
    return a + b


results = run_cases(add, "tests/cases.json")
print(sum(results), len(results))
os.makedirs("report", exist_ok=True)
with open("report/summary.txt", "w") as out:
    out.write("passed %d of %d\\n" % (sum(results), len(results)))
"""

WRONG = SOLUTION.replace("return a + b", "return a - b")

READS_AND_LISTS = """
import os
print(sorted(os.listdir(".")))
print(sorted(os.listdir("tests")))
print(open("tests/cases.json").read() == open("./tests//cases.json").read())
print(os.path.isfile("skipped.txt"))
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def files(extra: dict[str, str | None] | None = None) -> dict[str, str | None]:
    sent: dict[str, str | None] = {
        "harness.py": b64(HARNESS),
        "tests/cases.json": b64(json.dumps(CASES)),
    }
    sent.update(extra or {})
    return sent


def call(code: str, sent: dict[str, str | None], fetch: list[str]) -> dict[str, Any]:
    try:
        response = run_code(
            RunCodeRequest(code=code, language="python", files=sent, fetch_files=fetch),
            max_attempts=1,
        )
    except Exception as error:  # noqa: BLE001 (the client raises bare Exception)
        return {"error": str(error)}
    run = response.run_result
    return {
        "status": response.status,
        "stdout": run.stdout if run else None,
        "stderr": run.stderr if run else None,
        "files": {k: base64.b64decode(v).decode() for k, v in response.files.items()},
    }


def main() -> None:
    set_sandbox_endpoint(sys.argv[1])
    fetch = ["report/summary.txt", "never/written.txt"]
    result = {
        "right": call(SOLUTION, files(), fetch),
        "wrong": call(WRONG, files(), fetch),
        "reads": call(READS_AND_LISTS, files({"skipped.txt": None}), []),
        "escape": call("print(1)", files({"../escape.py": b64("x = 1")}), []),
        "absolute": call("print(1)", files({"/etc/passwd": b64("x")}), []),
        # Every request starts from its own files: the first request's output is gone.
        "fresh": call("import os\nprint(os.path.exists('report/summary.txt'))", {}, []),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
