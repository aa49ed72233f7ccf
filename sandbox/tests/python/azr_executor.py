"""The drop-in executor for the AZR reference (`azr_sandbox.azr`) against a real daemon.

    azr_executor.py SOCKET SEEDS.jsonl

Every method with the call shapes the reference's trainer uses (numpy `imports`, empty and
unparsable answers, error-prediction tasks, a program that is not deterministic), each
result compared with what CPython computes for the same program (this process is the
oracle: the seed programs are plain functions); forged answers through every method; the
launcher against a stand-in package with the reference's module paths (written here, no
reference code); a daemon that is down. Prints one JSON object for
`sandbox/tests/integration/python_package.rs`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from azr_sandbox import SandboxUnavailable
from azr_sandbox.azr import PythonExecutor

REPEAT = "def f(s, n):\n    return s * n"
BANNED = ["logging", "random", "multiprocessing", "subprocess", "threading", "os.sys", "time"]


def cpython_value(program: str, imports: list[str], call: str) -> tuple[bool, Any]:
    """`(True, value)` of `call` after `program` in CPython, or `(False, None)` if it raises."""
    namespace: dict[str, Any] = {}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec("\n".join([*imports, program]), namespace)  # noqa: S102 (the oracle)
            return True, eval(call, namespace)
    except Exception:  # noqa: BLE001 (whatever a program raises, it failed)
        return False, None


def seed_programs(executor: PythonExecutor, path: str) -> dict[str, Any]:
    """Every seed program: validation's gold output, and right and wrong answers of both
    kinds, each against CPython's `==`."""
    items = agree = 0
    differences: list[str] = []
    records = [json.loads(line) for line in Path(path).read_text().splitlines()]
    for i, r in enumerate(records):
        program, given, imports = r["snippet"], r["input"], r["imports"]
        ok, value = cpython_value(program, imports, f"f({given})")
        valid, gold = executor.check_all(program, given, imports=np.array(imports, dtype=object))
        items += 1
        if valid and ok:
            # A gold repr that is no expression (`dict_keys([1])`) is compared as text.
            evaluated, ours = cpython_value(program, imports, gold or "None")
            same = ours == value if evaluated else gold == repr(value)
        else:
            same = valid == ok
        agree += same
        if not same:
            differences.append(f"{i} validation: ours {valid} {gold!r}, CPython {ok} {value!r}")
        if not (valid and ok):
            continue
        other = records[(i + 1) % len(records)]
        outputs = [repr(value), other["output"], "", "f("]
        inputs = [given, other["input"], "", "("]
        scores = executor.eval_k_output_prediction(program, gold, outputs, imports)
        singles = [executor.eval_output_prediction(program, gold, o, imports) for o in outputs[:2]]
        for k, (answer, score) in enumerate(zip(outputs, scores)):
            parsed, answered = cpython_value("", [], answer) if answer.strip() else (False, None)
            want = 1.0 if parsed and answered == value else 0.0
            items += 1
            agree += score == want and (k >= 2 or singles[k] == score)
            if score != want:
                differences.append(f"{i} output {answer!r}: ours {score}, CPython {want}")
        scores = executor.eval_k_input_prediction(program, gold, inputs, imports)
        singles = [executor.eval_input_prediction(program, gold, a, imports) for a in inputs[:2]]
        for k, (answer, score) in enumerate(zip(inputs, scores)):
            ran, result = (
                cpython_value(program, imports, f"f({answer})") if answer.strip() else (False, None)
            )
            want = 1.0 if ran and result == value else 0.0
            items += 1
            agree += score == want and (k >= 2 or singles[k] == score)
            if score != want:
                differences.append(f"{i} input {answer!r}: ours {score}, CPython {want}")
    return {"items": items, "agree": agree, "differences": differences[:20]}


def call_shapes(executor: PythonExecutor) -> dict[str, Any]:
    nondeterministic = "calls = [0]\ndef f(x):\n    calls[0] += 1\n    return x + calls[0]"
    counter = "def f(s):\n    return Counter(s)"
    return {
        "check_all": executor.check_all(REPEAT, "'ab', 3", banned_keywords=BANNED),
        "banned": executor.check_all(
            "import random\ndef f(x):\n    return x", "1", banned_keywords=BANNED
        ),
        "numpy_imports": executor.check_all(
            counter, "'aab'", imports=np.array(["from collections import Counter"], dtype=object)
        ),
        "does_not_parse": executor.check_all("def f(x)\n    return x", "1"),
        "fails": executor.check_all("def f(x):\n    return 1 / x", "0"),
        "not_deterministic": executor.check_all(nondeterministic, "1", check_determinism=True),
        "error_task": executor.check_all("def f(x):\n    return 1 / x", "0", check_error=True),
        "error_task_none": executor.check_all(REPEAT, "'a', 2", check_error=True),
        "error_task_banned": executor.check_all(
            "def f(x):\n    raise ValueError(x)",
            "1",
            check_error=True,
            banned_keywords_for_errors_and_exceptions=["raise"],
        ),
        "run_code": executor.run_code(REPEAT, "'a', 2"),
        "run_code_error": executor.run_code(REPEAT, "[], None"),
        "validate_code": [
            executor.validate_code(REPEAT, "'a', 2"),
            executor.validate_code(REPEAT, ""),
        ],
        "apply": executor.apply(REPEAT + "\nf('ab', 2)"),
        "apply_print": executor.apply("x = 20\nprint(x + 1)"),
        "apply_error": executor.apply("def f():\n    raise KeyError('k')\nf()"),
        "batch_apply": executor.batch_apply(["1 + 1", "'a' * 3"]),
        "timeout": PythonExecutor(timeout_length=1, sandbox=executor.sandbox).run_code(
            "def f(x):\n    while True:\n        x += 1", "0"
        ),
        "cleanup": executor.cleanup(),
    }


def forged(executor: PythonExecutor) -> dict[str, Any]:
    """Answers that would pass by running code, or by the reference's string templates."""
    _, gold = executor.check_all(REPEAT, "'ab', 3")
    outputs = [
        "f('ab', 3)",
        "1 or True",
        "1) or (True",
        "eval(gold_output)",
        "print(True)",
        "type('X', (), {'__eq__': lambda a, b: True})()",
        "__import__('builtins').globals().get('gold_output')",
        "'ababab' if True else 0\n1",
    ]
    inputs = [
        "1) or (True",
        "next(a for a in [('ab', 3)] if f(*a) == 'ababab')",
        "*[a for a in [('ab', 3)] if f(*a)][0]",
        "print(True)",
    ]
    accepted = [a for a in outputs if executor.eval_output_prediction(REPEAT, gold or "", a)]
    accepted += [
        a for a in outputs if any(executor.eval_k_output_prediction(REPEAT, gold or "", [a]))
    ]
    accepted += [a for a in inputs if executor.eval_input_prediction(REPEAT, gold or "", a)]
    accepted += [
        a for a in inputs if any(executor.eval_k_input_prediction(REPEAT, gold or "", [a]))
    ]
    return {"tried": 2 * (len(outputs) + len(inputs)), "accepted": accepted}


STANDIN = {
    "absolute_zero_reasoner/__init__.py": "",
    "absolute_zero_reasoner/utils/__init__.py": "",
    "absolute_zero_reasoner/utils/code_utils/__init__.py": "",
    "absolute_zero_reasoner/utils/code_utils/python_executor.py": (
        "class PythonExecutor:\n"
        "    def __init__(self, **kwargs):\n"
        "        raise RuntimeError('the stand-in executor ran')\n"
    ),
    "absolute_zero_reasoner/trainer/__init__.py": "",
    "absolute_zero_reasoner/trainer/ppo/__init__.py": "",
    "absolute_zero_reasoner/trainer/ppo/azr_ray_trainer.py": (
        "from absolute_zero_reasoner.utils.code_utils.python_executor import PythonExecutor\n"
    ),
    "absolute_zero_reasoner/main_azr_ppo.py": (
        "import json, sys\n"
        "from absolute_zero_reasoner.trainer.ppo import azr_ray_trainer\n"
        "executor = azr_ray_trainer.PythonExecutor(timeout_length=10, ast_check=True, max_workers=1)\n"
        "print(json.dumps({'class': type(executor).__module__, 'argv': sys.argv[1:],\n"
        "    'check': executor.check_all('def f(a):\\n    return a * 2', '21')}))\n"
    ),
}


def launcher(socket: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as root:
        for name, text in STANDIN.items():
            path = Path(root, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        env = dict(os.environ, AZR_SANDBOX_SOCKET=socket)
        env["PYTHONPATH"] = os.pathsep.join([root, *sys.path[1:]])
        overrides = ["azr.executor=qwq", "trainer.n_gpus_per_node=1", "+azr.note=a b"]
        run = subprocess.run(
            [sys.executable, "-m", "azr_sandbox.azr_reference", *overrides],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if run.returncode != 0:
            return {"error": run.stderr[-2000:]}
        result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
        result["overrides"] = overrides
        return result


def daemon_down() -> dict[str, Any]:
    started = time.monotonic()
    try:
        PythonExecutor(sockets="/nonexistent/azr.sock").eval_output_prediction(REPEAT, "'a'", "'a'")
        raised = "nothing"
    except SandboxUnavailable as e:
        raised = e.code
    return {"raised": raised, "seconds": time.monotonic() - started}


def main() -> None:
    socket, seeds = sys.argv[1], str(Path(sys.argv[2]).resolve())
    # The oracle runs the seed programs here: one of them writes a file.
    os.chdir(tempfile.mkdtemp(prefix="azr-executor-oracle-"))
    executor = PythonExecutor(timeout_length=10, ast_check=True, max_workers=1, sockets=socket)
    started = time.monotonic()
    report = {
        "seeds": seed_programs(executor, seeds),
        "seeds_seconds": time.monotonic() - started,
        "shapes": call_shapes(executor),
        "forged": forged(executor),
        "launcher": launcher(socket),
        "down": daemon_down(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
