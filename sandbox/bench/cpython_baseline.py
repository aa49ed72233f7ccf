"""CPython baselines for `azr-sandbox bench`, measured in the same run as the sandbox.

Usage: python3 cpython_baseline.py MODE WORKLOAD FILE WORKERS ROUNDS
  MODE      pool: a warm multiprocessing pool, one `exec` task per check (the AZR
            reference's way: each check is its own pool task);
            subprocess: one fresh `python3` process per program.
  WORKLOAD  V: validation (run + determinism re-run + repr) per program;
            S: validation + 8 deduction + 8 abduction checks per program.
  FILE      JSONL with {"snippet", "input", "imports"} (and "output").
Prints one JSON line per round: {"seconds": ..., "programs": ..., "tasks": ...}.
No isolation of any kind: this is the speed a bare interpreter reaches, not a sandbox.
"""

import io
import json
import multiprocessing
import subprocess
import sys
import time


def validate(snippet, imports, inp):
    code = "\n".join(imports) + "\n" + snippet if imports else snippet
    ns = {"__name__": "__main__"}
    try:
        exec(code, ns)
        call = compile("f(" + inp + ")", "<input>", "eval")
        first = eval(call, ns)
        if first != eval(call, ns):
            raise Exception("Non-deterministic code")
        return repr(first)
    except BaseException as exc:  # noqa: BLE001 - a baseline counts failures too
        return "error: " + type(exc).__name__


def check_deduction(snippet, imports, gold, answer):
    code = "\n".join(imports) + "\n" + snippet if imports else snippet
    ns = {"__name__": "__main__"}
    try:
        exec(code, ns)
        return eval(gold, ns) == eval(answer, ns)
    except BaseException:  # noqa: BLE001
        return False


def check_abduction(snippet, imports, gold, answer):
    code = "\n".join(imports) + "\n" + snippet if imports else snippet
    ns = {"__name__": "__main__"}
    try:
        exec(code, ns)
        return eval(gold, ns) == eval("f(" + answer + ")", ns)
    except BaseException:  # noqa: BLE001
        return False


def task(args):
    # Programs print; capture it per task, as the sandbox does.
    sys.stdout = io.StringIO()
    kind = args[0]
    if kind == "v":
        return validate(*args[1:])
    if kind == "d":
        return check_deduction(*args[1:])
    return check_abduction(*args[1:])


def tasks_for(records, workload):
    tasks = []
    for r in records:
        tasks.append(("v", r["snippet"], r["imports"], r["input"]))
        if workload == "S":
            for _ in range(8):
                tasks.append(("d", r["snippet"], r["imports"], r["output"], r["output"]))
            for _ in range(8):
                tasks.append(("a", r["snippet"], r["imports"], r["output"], r["input"]))
    return tasks


SUBPROCESS_SCRIPT = """
import json, sys
r = json.loads(sys.stdin.read())
code = "\\n".join(r["imports"]) + "\\n" + r["snippet"]
ns = {"__name__": "__main__"}
exec(code, ns)
call = compile("f(" + r["input"] + ")", "<input>", "eval")
first = eval(call, ns)
if first != eval(call, ns):
    raise Exception("Non-deterministic code")
print(repr(first))
"""


def run_subprocess(record):
    subprocess.run(
        [sys.executable, "-c", SUBPROCESS_SCRIPT],
        input=json.dumps(record).encode(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=10,
    )


def main():
    mode, workload, path, workers, rounds = sys.argv[1:6]
    workers, rounds = int(workers), int(rounds)
    records = [json.loads(line) for line in open(path) if line.strip()]
    if mode == "pool":
        tasks = tasks_for(records, workload)
        with multiprocessing.Pool(workers) as pool:
            pool.map(task, tasks[: 2 * workers], chunksize=1)  # warm up
            for _ in range(rounds):
                start = time.perf_counter()
                for _ in pool.imap(task, tasks, chunksize=1):
                    pass
                seconds = time.perf_counter() - start
                print(json.dumps({"seconds": seconds, "programs": len(records), "tasks": len(tasks)}), flush=True)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as threads:
            for _ in range(rounds):
                start = time.perf_counter()
                list(threads.map(run_subprocess, records))
                seconds = time.perf_counter() - start
                print(json.dumps({"seconds": seconds, "programs": len(records), "tasks": len(records)}), flush=True)


if __name__ == "__main__":
    main()
