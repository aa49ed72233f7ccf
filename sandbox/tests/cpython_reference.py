"""CPython's answers for the fidelity test: `repr(f(<input>))` for every seed input.

Usage: python3 cpython_reference.py FILE...   (reads JSONL seed files, writes JSON to stdout)
Output: a list with one entry per (file, line, input index):
  {"file": ..., "line": n, "index": k, "ok": bool, "value": repr-or-null, "error": str-or-null}
Entries also list the non-stdlib modules the program imports ("third_party"). Run it in a
scratch directory: some programs write files. Each input runs in a fresh namespace with a 10 s alarm; stdout/stderr are swallowed. The
caller runs this under several PYTHONHASHSEED values to find hash-dependent answers.
"""

import ast
import io
import json
import signal
import sys


class Timeout(BaseException):
    pass


def on_alarm(signum, frame):
    raise Timeout()


def third_party(snippet, imports):
    """The non-stdlib modules a program imports (such programs are set apart)."""
    code = "\n".join(imports) + "\n" + snippet if imports else snippet
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return sorted(n for n in names if n not in sys.stdlib_module_names)


def run(snippet, imports, inp):
    code = "\n".join(imports) + "\n" + snippet if imports else snippet
    ns = {"__name__": "__main__"}
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = io.StringIO()
    signal.alarm(10)
    try:
        exec(compile(code, "<program>", "exec"), ns)
        value = eval(compile("f(" + inp + ")", "<input>", "eval"), ns)
        return {"ok": True, "value": repr(value), "error": None}
    except BaseException as exc:  # noqa: BLE001 - every failure is an answer here
        return {"ok": False, "value": None, "error": type(exc).__name__ + ": " + str(exc)[:200]}
    finally:
        signal.alarm(0)
        sys.stdout, sys.stderr = saved


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    sys.setrecursionlimit(1000)
    out = []
    for path in sys.argv[1:]:
        with open(path) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                r = json.loads(line)
                inputs = [r["input"]] if "input" in r else r["inputs"]
                for k, inp in enumerate(inputs):
                    entry = {"file": path, "line": n, "index": k,
                             "third_party": third_party(r["snippet"], r.get("imports") or [])}
                    entry.update(run(r["snippet"], r.get("imports") or [], inp))
                    out.append(entry)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
