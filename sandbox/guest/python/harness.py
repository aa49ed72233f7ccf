"""Python helpers of the guest's operations (`src/ops.rs` runs the operations themselves).

The guest decides every verdict in Rust (`src/judge.rs`): model-written code runs in this
interpreter and can reach everything written in Python, this module included. So the
functions here only do what is safe to do before any model-written code of an item has run
(compiling the program, the banned-import rule, setting up the output capture), or what
only informs (the captured output, the text of an exception), never what decides.

Semantics follow the AZR reference (`checks.py`, `templates.py`): the program's imports are
prepended to it; the banned words match whole import-path components, with a regex fallback
when the source does not parse.
"""

import builtins
import sys
import ast
import io
import re

_type = type
_len = len
_str = str
_isinstance = isinstance
_compile = compile
_list = list

# The default banned words of the AZR reference (`azr.data_selection_strategy.banned_words`).
DEFAULT_BANNED = [
    "logging", "random", "multiprocessing", "pebble", "subprocess", "threading", "datetime",
    "time", "hashlib", "hmac", "bcrypt", "os.sys", "os.path", "sys.exit", "os.environ",
    "calendar",
]


class OutputLimit(BaseException):
    """Raised inside the program when it writes more than the stdout cap."""


class _Buffer:
    """`sys.stdout.buffer`: bytes, written to the same capture as UTF-8 text."""

    def __init__(self, write):
        self.write = write

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass


class Stream:
    """`sys.stdout`/`sys.stderr` for programs. `write` and `buffer.write` are native
    (`src/capture.rs`): they, not this class, decide what is captured and the cap."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, write, write_bytes):
        self.write = write
        self.buffer = _Buffer(write_bytes)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def readable(self):
        return False

    def writable(self):
        return True


_stdout = None
_stderr = None


def install_streams(stdout_write, stdout_bytes, stderr_write, stderr_bytes):
    """At start-up: the two streams, with the native writers."""
    global _stdout, _stderr
    _stdout = Stream(stdout_write, stdout_bytes)
    _stderr = Stream(stderr_write, stderr_bytes)


def _point_streams():
    sys.stdout = sys.__stdout__ = _stdout
    sys.stderr = sys.__stderr__ = _stderr


def begin(recursion_limit):
    """Before a request's program runs: the streams (emptied natively), the recursion limit."""
    _point_streams()
    sys.setrecursionlimit(recursion_limit)


def restart_capture():
    _point_streams()


def make_stdin(data):
    """`sys.stdin` for a script: `data` (bytes) read as `python3 prog.py < file` reads it
    (UTF-8, universal newlines, with a `.buffer` for `sys.stdin.buffer.read()`). `open(0)`
    gives the same stream (`open(0, 'rb')` its buffer), as file descriptor 0 would."""
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    sys.stdin = sys.__stdin__ = stdin
    original = builtins.open

    def open(file, mode="r", *args, **kwargs):
        if _type(file) is int and file == 0:
            return stdin.buffer if "b" in mode else stdin
        return original(file, mode, *args, **kwargs)

    builtins.open = open
    return stdin


def banned_import(source, banned, banned_keywords):
    """Return the banned word a program uses, or None.

    As the reference does: import paths are split on '.', and a banned word matches a whole
    component (so dotted words such as "os.path" only ever match through the regex fallback,
    which runs when the source does not parse). The walk only runs when the source could
    contain what it looks for: most programs import nothing.
    """
    if not ("import" in source or any(word in source for word in banned_keywords)):
        return None
    try:
        tree = ast.parse(source, "<program>", "exec")
    except SyntaxError:
        tree = None
    if tree is None:
        for word in _list(banned) + _list(banned_keywords):
            if re.search(r"\b" + re.escape(word) + r"\b", source):
                return word
        return None
    for node in ast.walk(tree):
        if _isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                for word in banned:
                    if word in parts:
                        return word
        elif _isinstance(node, ast.ImportFrom):
            parts = node.module.split(".") if node.module else []
            for word in banned:
                if word in parts:
                    return word
            for alias in node.names:
                names = alias.name.split(".")
                for word in banned:
                    if word in names:
                        return word
        if banned_keywords:
            if _isinstance(node, ast.Assert) and "assert" in banned_keywords:
                return "assert"
            if _isinstance(node, ast.Raise) and "raise" in banned_keywords:
                return "raise"
            if _isinstance(node, ast.Try) and "try" in banned_keywords:
                return "try"
            if _isinstance(node, ast.ExceptHandler) and "except" in banned_keywords:
                return "except"
    return None


def compile_program(source):
    return _compile(source, "<program>", "exec")


def fresh_namespace():
    return {"__name__": "__main__", "__builtins__": builtins}


def describe(exc):
    """The type name and message of an exception (informational: may run its `__str__`)."""
    name = _type(exc).__name__
    try:
        message = _str(exc)
    except BaseException:
        message = "<unprintable %s>" % name
    return (name, message)
