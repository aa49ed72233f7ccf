"""The AZR operations, run inside the guest.

Every model-written string (program, input, answer, gold output) is parsed, compiled and
evaluated here, inside the wasm sandbox; the host only moves bytes. The host sends one request
(JSON) holding a list of items; `dispatch` returns a generator that yields one result tuple per
item, in order, so that the host can give every item its own fuel and time budget and keep the
results of the items that finished when a later one traps.

A result is `(verdict, passed, value, stdout, error_type, error_message)`:
- verdict: "ok", "error" (a Python exception), "rejected" (a validation rule refused the
  program), "output_limit" (stdout cap exceeded). Traps (time, fuel, memory) are the host's.
- passed: for checks, whether the answer is right; None for run/validate.
- value: `repr` of the result (run/validate: of `f(x)`; checks: of the answer's value).

Semantics follow the AZR reference (`checks.py`, `templates.py`): the program's imports are
prepended to it; `f(<input>)` is the input spliced into a call; validation evaluates it twice
in one namespace and refuses the program when the two results differ.
"""

import builtins
import json
import sys
import ast
import re

# Held directly so that a program that rebinds builtins cannot change how it is judged.
_builtins_dict = dict(builtins.__dict__)
_type = type
_repr = repr
_len = len
_str = str
_isinstance = isinstance
_compile = compile
_exec = exec
_eval = eval
_callable = callable
_list = list
_tuple = tuple
_set = set
_BaseException = BaseException

# The default banned words of the AZR reference (`azr.data_selection_strategy.banned_words`).
DEFAULT_BANNED = [
    "logging", "random", "multiprocessing", "pebble", "subprocess", "threading", "datetime",
    "time", "hashlib", "hmac", "bcrypt", "os.sys", "os.path", "sys.exit", "os.environ",
    "calendar",
]

_PLAIN_TYPES = frozenset(
    [int, float, complex, bool, str, bytes, bytearray, type(None), list, tuple, dict, set,
     frozenset, range, slice, type(Ellipsis)]
)


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


class Rejected(Exception):
    """A validation rule refused the program (banned import, no `f`, not deterministic)."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message


# ---------------------------------------------------------------- program checks


def banned_import(tree, source, banned, banned_keywords):
    """Return the banned word a program uses, or None.

    As the reference does: import paths are split on '.', and a banned word matches a whole
    component (so dotted words such as "os.path" only ever match through the regex fallback,
    which runs when the source does not parse).
    """
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


class Program:
    """A program compiled once per request and executed afresh for every item."""

    __slots__ = ("code", "error", "require_f")

    def __init__(self, code, error):
        self.code = code
        self.error = error
        self.require_f = False


def load_program(source, imports, options, cache, enforce_rules=False):
    """Parse and compile a program once per request.

    The validation rules (banned words and keywords) are enforced only when validating a
    proposal: checks run programs that already passed, or a solver's program, which the
    reference does not screen either. The AST walk only runs when the source could contain
    what it looks for (an import or a banned keyword): most programs import nothing.
    """
    key = (source, _tuple(imports), enforce_rules)
    program = cache.get(key)
    if program is not None:
        return program
    full = "\n".join(imports) + "\n" + source if imports else source
    program = Program(None, None)
    if enforce_rules:
        banned = options.get("banned_words", DEFAULT_BANNED)
        banned_keywords = options.get("banned_keywords", [])
        needs_walk = "import" in full or any(word in full for word in banned_keywords)
        tree = None
        if needs_walk:
            try:
                tree = ast.parse(full, "<program>", "exec")
            except SyntaxError:
                tree = None
        if needs_walk:
            word = banned_import(tree, full, banned, banned_keywords)
            if word is not None:
                program.error = Rejected("BannedImport", "program uses banned word %r" % word)
    if program.error is None:
        try:
            program.code = _compile(full, "<program>", "exec")
        except _BaseException as exc:
            program.error = exc
    program.require_f = enforce_rules and options.get("require_f", True)
    cache[key] = program
    return program


def fresh_namespace():
    return {"__name__": "__main__", "__builtins__": builtins}


def run_program(program):
    """Execute the program's definitions in a new namespace; return the namespace."""
    if program.error is not None:
        raise program.error
    namespace = fresh_namespace()
    _exec(program.code, namespace)
    if program.require_f and not _callable(namespace.get("f")):
        raise Rejected("MissingFunction", "program does not define a function f")
    return namespace


def compile_call(text, cache=None):
    """Compile `f(<text>)`, refusing inputs that are more than an argument list."""
    if cache is not None:
        key = ("call", text)
        code = cache.get(key)
        if code is None:
            code = cache[key] = compile_call(text)
        return code
    try:
        code = _compile("f(" + text + ")", "<input>", "eval")
    except SyntaxError:
        raise SyntaxError("input is not a valid argument list: %r" % _truncate(text, 200))
    # An input that is more than an argument list (`1) or (2`) must close f's parenthesis
    # itself, so its brackets do not balance and it cannot also parse inside `[...]`. Plain
    # positional arguments pass this cheap test; keyword and `**` arguments (which a list
    # display does not accept) are decided on the AST.
    try:
        _compile("[" + text + "]", "<input>", "eval")
        return code
    except SyntaxError:
        pass
    body = ast.parse("f(" + text + ")", "<input>", "eval").body
    if not (
        _isinstance(body, ast.Call)
        and _isinstance(body.func, ast.Name)
        and body.func.id == "f"
    ):
        raise SyntaxError("input is not a plain argument list: %r" % _truncate(text, 200))
    return code


def compile_value(text, what):
    try:
        return _compile(text, "<" + what + ">", "eval")
    except SyntaxError:
        raise SyntaxError("%s is not a Python expression: %r" % (what, _truncate(text, 200)))


def _truncate(text, n):
    return text if _len(text) <= n else text[:n] + "..."


# ---------------------------------------------------------------- comparing answers


def _types_in(value, out, depth=0):
    """Collect the types inside a (possibly nested) value, bounded in depth and breadth."""
    t = _type(value)
    out.add(t)
    if depth > 50 or _len(out) > 1000:
        return
    if t in (list, tuple, set, frozenset):
        for item in value:
            _types_in(item, out, depth + 1)
    elif t is dict:
        for k, v in value.items():
            _types_in(k, out, depth + 1)
            _types_in(v, out, depth + 1)


def same_value(answer, gold):
    """`gold == answer`, as the reference compares, but an answer may only contain types
    that are plain data or that the gold value itself contains: an answer that builds an
    object whose `__eq__` always says True must not pass."""
    allowed = _set()
    _types_in(gold, allowed)
    seen = _set()
    _types_in(answer, seen)
    for t in seen:
        if t not in _PLAIN_TYPES and t not in allowed:
            return False
    return bool(gold == answer)


# ---------------------------------------------------------------- the operations


def op_run(item, options, cache):
    program = load_program(item["program"], item.get("imports", []), options, cache)
    namespace = run_program(program)
    text = item.get("input")
    if text is None:
        return None, None
    value = _eval(compile_call(text, cache), namespace)
    return None, _repr(value)


def op_validate(item, options, cache):
    program = load_program(item["program"], item.get("imports", []), options, cache, True)
    namespace = run_program(program)
    call = compile_call(item["input"], cache)
    first = _eval(call, namespace)
    second = _eval(call, namespace)
    if first != second:
        raise Rejected(
            "NonDeterministic", "f(input) gave different results on two calls"
        )
    return None, _repr(first)


def op_deduction(item, options, cache):
    """Output prediction: is the answer, evaluated, equal to the gold output?"""
    program = load_program(item["program"], item.get("imports", []), options, cache)
    namespace = run_program(program)
    gold = _eval(compile_value(item["gold"], "gold output"), namespace)
    answer = _eval(compile_value(item["answer"], "answer"), namespace)
    return same_value(answer, gold), _repr(answer)


def op_abduction(item, options, cache):
    """Input prediction: does f, called on the answer, give the gold output?"""
    program = load_program(item["program"], item.get("imports", []), options, cache)
    namespace = run_program(program)
    gold = _eval(compile_value(item["gold"], "gold output"), namespace)
    value = _eval(compile_call(item["answer"]), namespace)
    return same_value(value, gold), _repr(value)


def op_induction(item, options, cache):
    """Program synthesis: does the candidate reproduce every held-out output?"""
    program = load_program(item["program"], item.get("imports", []), options, cache)
    inputs = item["inputs"]
    outputs = item["outputs"]
    if _len(inputs) != _len(outputs):
        raise ValueError("induction check needs as many outputs as inputs")
    values = []
    passed = True
    for text, gold_text in zip(inputs, outputs):
        namespace = run_program(program)
        gold = _eval(compile_value(gold_text, "gold output"), namespace)
        value = _eval(compile_call(text, cache), namespace)
        values.append(value)
        if not same_value(value, gold):
            passed = False
            break
    return passed, _repr(values)


OPS = {
    "run": op_run,
    "validate": op_validate,
    "deduction": op_deduction,
    "abduction": op_abduction,
    "induction": op_induction,
}


_builtins_items = _tuple(_builtins_dict.items())


def _restore_builtins():
    """Undo a previous item's changes to `builtins` (items of one program share it)."""
    d = builtins.__dict__
    if _len(d) == _len(_builtins_items):
        get = d.get
        for k, v in _builtins_items:
            if get(k) is not v:
                break
        else:
            return
    d.clear()
    d.update(_builtins_dict)


def run_item(item, options, cache):
    cap = options.get("stdout_cap", 65536)
    _stdout.reset(cap)
    _stderr.reset(cap)
    sys.stdout = _stdout
    sys.stderr = _stderr
    sys.setrecursionlimit(options.get("recursion_limit", 1000))
    verdict = "ok"
    passed = None
    value = None
    etype = None
    emsg = None
    try:
        op = OPS.get(item.get("op"))
        if op is None:
            raise ValueError("unknown operation %r" % (item.get("op"),))
        passed, value = op(item, options, cache)
    except OutputLimit as exc:
        verdict, etype, emsg = "output_limit", "OutputLimit", _str(exc)
    except Rejected as exc:
        verdict, etype, emsg = "rejected", exc.kind, exc.message
    except _BaseException as exc:
        verdict = "error"
        etype = _type(exc).__name__
        try:
            emsg = _str(exc)
        except _BaseException:
            emsg = "<unprintable %s>" % etype
    if _stdout.overflow or _stderr.overflow:
        verdict, etype, emsg = "output_limit", "OutputLimit", (
            "output limit of %d characters exceeded" % cap
        )
    value_cap = options.get("value_cap", 1 << 20)
    if verdict == "ok" and value is not None and _len(value) > value_cap:
        verdict, etype, emsg = "output_limit", "OutputLimit", (
            "repr of the result is longer than %d characters" % value_cap
        )
        value = None
    if verdict != "ok" and item.get("op") in ("deduction", "abduction", "induction"):
        passed = False
    sys.stdout = _stdout
    sys.stderr = _stderr
    return (verdict, passed, value, _stdout.text(), etype, emsg)


def dispatch(raw):
    request = json.loads(raw)
    options = request.get("options") or {}
    items = request.get("items") or []
    cache = {}
    for index, item in enumerate(items):
        if index:
            # Only between items: the instance is discarded after the last one.
            _restore_builtins()
        yield run_item(item, options, cache)
