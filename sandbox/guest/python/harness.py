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


class Capture:
    """`sys.stdout`/`sys.stderr` for programs: keeps at most `cap` characters."""

    def __init__(self):
        self.parts = []
        self.size = 0
        self.cap = 0
        self.overflow = False

    def reset(self, cap):
        self.parts = []
        self.size = 0
        self.cap = cap
        self.overflow = False

    def write(self, s):
        if not _isinstance(s, _str):
            raise TypeError("write() argument must be str, not " + _type(s).__name__)
        n = _len(s)
        room = self.cap - self.size
        if n > room:
            if room > 0:
                self.parts.append(s[:room])
            self.size = self.cap
            self.overflow = True
            raise OutputLimit("output limit of %d characters exceeded" % self.cap)
        self.parts.append(s)
        self.size += n
        return n

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def text(self):
        return "".join(self.parts)

    encoding = "utf-8"
    errors = "strict"


_stdout = Capture()
_stderr = Capture()


def begin(cap, recursion_limit):
    """Before a request's program runs: fresh output capture, the recursion limit."""
    _stdout.reset(cap)
    _stderr.reset(cap)
    sys.stdout = _stdout
    sys.stderr = _stderr
    sys.setrecursionlimit(recursion_limit)


def captured():
    """What the program wrote so far, and whether it passed the cap (informational)."""
    return (_stdout.text() + _stderr.text(), _stdout.overflow or _stderr.overflow)


def captured_apart():
    """A script's stdout and stderr, kept apart, and whether either passed the cap."""
    return (_stdout.text(), _stderr.text(), _stdout.overflow or _stderr.overflow)


def make_stdin(data):
    """`sys.stdin` for a script: `data` (bytes) read as `python3 prog.py < file` reads it
    (UTF-8, universal newlines, with a `.buffer` for `sys.stdin.buffer.read()`)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")


def restart_capture(cap):
    _stdout.reset(cap)
    _stderr.reset(cap)
    sys.stdout = _stdout
    sys.stderr = _stderr


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
