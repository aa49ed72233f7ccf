"""CPython's answers for the fidelity test: `repr(f(<input>))` for every seed input.

Usage: python3 cpython_reference.py FILE...   (reads JSONL seed files, writes JSON to stdout)
Output: a list with one entry per (file, line, input index):
  {"file": ..., "line": n, "index": k, "ok": bool, "value": repr-or-null, "error": str-or-null}
Entries also list the non-stdlib modules the program imports ("third_party"). Run it in a
scratch directory: some programs write files. Each input runs in a child forked from a
fresh interpreter (cpython_zygote.py), so that no program sees what another did to the
interpreter, with a 10 s alarm; stdout/stderr are swallowed. The caller runs it with
PYTHONHASHSEED=0, the hash seed the sandbox fixes.
"""

import ast
import json
import os
import subprocess
import sys


def third_party(snippet: str, imports: list[str]) -> list[str]:
    """The non-stdlib modules a program imports (such programs are set apart)."""
    code = "\n".join(imports) + "\n" + snippet if imports else snippet
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return sorted(n for n in names if n not in sys.stdlib_module_names)


ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpython_zygote.py")


def unescape(line: str) -> str:
    """Undo the zygote's escaping of backslashes and newlines."""
    out = []
    chars = iter(line)
    for c in chars:
        if c == "\\":
            c = next(chars, "")
            out.append("\n" if c == "n" else c)
        else:
            out.append(c)
    return "".join(out)


def run_all(jobs: list[tuple[str, str]]) -> list[dict[str, bool | str | None]]:
    """Answers for (code, args) pairs, each from a fresh-interpreter state (cpython_zygote.py)."""
    payload = b"".join(
        code.encode("utf-8", "surrogatepass")
        + b"\0"
        + args.encode("utf-8", "surrogatepass")
        + b"\0"
        for code, args in jobs
    )
    done = subprocess.run(
        [sys.executable, ZYGOTE], input=payload, stdout=subprocess.PIPE, check=True
    )
    lines = done.stdout.decode("utf-8", "surrogatepass").split("\n")[: len(jobs)]
    answers = []
    for line in lines:
        text = unescape(line)
        ok = text.startswith("1")
        answers.append(
            {"ok": ok, "value": text[1:] if ok else None, "error": None if ok else text[1:]}
        )
    return answers


def main() -> None:
    entries = []
    jobs = []
    for path in sys.argv[1:]:
        with open(path) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                r = json.loads(line)
                imports = r.get("imports") or []
                code = "\n".join(imports) + "\n" + r["snippet"] if imports else r["snippet"]
                inputs = [r["input"]] if "input" in r else r["inputs"]
                for k, inp in enumerate(inputs):
                    entries.append(
                        {
                            "file": path,
                            "line": n,
                            "index": k,
                            "third_party": third_party(r["snippet"], imports),
                        }
                    )
                    jobs.append((code, inp))
    for entry, result in zip(entries, run_all(jobs)):
        entry.update(result)
    json.dump(entries, sys.stdout)


if __name__ == "__main__":
    main()
