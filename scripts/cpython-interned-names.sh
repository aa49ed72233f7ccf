#!/usr/bin/env bash
# Regenerates sandbox/guest/data/cpython-interned-names.txt: the identifier-like strings
# that `python3` (the CPython the sandbox matches, 3.11 here) has interned when a program
# starts. CPython lays a frozenset constant such as `{1, 2, "name"}` out differently when
# one of its strings was interned already, so the guest needs the list (see
# sandbox/guest/patches/README.md). Run it when the reference CPython changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
candidates=$(mktemp)
trap 'rm -f "$candidates"' EXIT
# Candidates: every one- and two-character identifier, and every identifier-like string
# that the modules of a new interpreter, their code and the built-in types name.
python3 - > "$candidates" <<'PY'
import builtins, gc, string, sys
chars = string.ascii_letters + string.digits + "_"
words = set(chars) | {a + b for a in chars for b in chars}
for obj in gc.get_objects():
    code = getattr(obj, "__code__", None)
    stack = [code] if code is not None else []
    while stack:
        c = stack.pop()
        words.update(c.co_names, c.co_varnames, c.co_cellvars, c.co_freevars, [c.co_name])
        for k in c.co_consts:
            if isinstance(k, str):
                words.add(k)
            elif hasattr(k, "co_names"):
                stack.append(k)
for module in list(sys.modules.values()):
    words.update(dir(module))
for t in (int, float, complex, bool, str, bytes, bytearray, list, tuple, dict, set, frozenset,
          range, slice, memoryview, type, object, BaseException):
    words.update(dir(t))
words.update(dir(builtins))
print("\n".join(sorted(w for w in words if w and all(ch in chars for ch in w))))
PY
# Which of them a fresh interpreter holds: asked of the same runner the tests compare with.
PYTHONHASHSEED=0 python3 "$root/sandbox/tests/cpython_zygote.py" --interned "$candidates" \
  > "$root/sandbox/guest/data/cpython-interned-names.txt"
echo "$(wc -l < "$root/sandbox/guest/data/cpython-interned-names.txt") names ($(python3 -V))" >&2
