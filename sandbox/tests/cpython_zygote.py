"""Runs programs the way `PYTHONHASHSEED=0 python3 program.py` would, many per process.

`cpython_reference.py` starts this file as a fresh interpreter and sends it the programs.
Each one runs in a child forked from this near-fresh interpreter, so every program sees the
same state: the strings a new interpreter has interned (which decide how CPython lays out a
frozenset constant such as `{1, 2, "a"}`), no module changed by an earlier program. This
file imports nothing beyond what a new interpreter already holds (and `signal`, for the
alarm), so that it adds almost nothing to that state.

Input (stdin): records separated by NUL bytes, two per program: the source, then the
arguments of `f` (Python source). Output (stdout): one line per program, a JSON-free
framing that needs no import: `1<repr>` or `0<ExceptionType: message>`, with newlines and
backslashes escaped as `\\n` and `\\\\`.

With `--interned FILE`: print, one per line, the words of FILE (one per line) that this
interpreter has already interned as another object, which is what the sandbox needs to
know to lay frozenset constants out the same way (scripts/cpython-interned-names.sh).
"""

import os
import signal
import sys


def on_alarm(signum: int, frame: object) -> None:
    raise TimeoutError("10 s")


def answer(code: str, args: str) -> str:
    ns = {"__name__": "__main__"}
    # Kept open until the child exits.
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    signal.alarm(10)
    try:
        exec(compile(code, "<program>", "exec"), ns)  # noqa: S102 - running it is the point
        return "1" + repr(eval(compile("f(" + args + ")", "<input>", "eval"), ns))
    except BaseException as exc:  # noqa: BLE001 - every failure is an answer here
        return "0" + type(exc).__name__ + ": " + str(exc)[:200]


def serve() -> None:
    signal.signal(signal.SIGALRM, on_alarm)
    records = sys.stdin.buffer.read().split(b"\0")
    out = sys.stdout.buffer
    for k in range(0, len(records) - 1, 2):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = records[k].decode("utf-8", "surrogatepass")
            args = records[k + 1].decode("utf-8", "surrogatepass")
            try:
                text = answer(code, args)
            except BaseException as exc:  # noqa: BLE001 - e.g. a repr that raised
                text = "0" + type(exc).__name__
            text = text.replace("\\", "\\\\").replace("\n", "\\n")
            os.write(write_end, text.encode("utf-8", "surrogatepass"))
            os._exit(0)
        os.close(write_end)
        chunks = []
        while True:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read_end)
        os.waitpid(pid, 0)
        out.write((b"".join(chunks) or b"0the program killed the interpreter") + b"\n")
    out.flush()


def interned(path: str) -> None:
    found = []
    with open(path, encoding="utf-8") as words:
        text = words.read()
    for word in text.split():
        # A fresh object of the same value (one-character strings are cached singletons,
        # the very objects the parser makes).
        fresh = word[:1] if len(word) == 1 else "".join(list(word))
        if sys.intern(fresh) is not fresh:
            found.append(word)
    sys.stdout.write("\n".join(found) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--interned":
        interned(sys.argv[2])
    else:
        serve()
