"""A `posix` module that exists but grants nothing.

RustPython's `os.py` needs a `posix` (or `nt`) module to import, and `random`, `statistics`,
`contextlib`, `dataclasses`, `tempfile` … need `os`. The guest has no host environment: this
module gives `os` the names it looks for, answers the questions that have a harmless answer
(`getcwd()` is "/", the environment is empty, `urandom` is seeded and deterministic), and
raises `PermissionError` for everything that would touch a file, a directory, a process, the
environment or a socket. WASI would deny those calls anyway (no preopened directories, no
environment, no sockets); failing here first gives programs CPython's exception types.
"""

import errno as _errno
import _random

name = "posix"
error = OSError
environ = {}
_have_functions = []

F_OK, R_OK, W_OK, X_OK = 0, 4, 2, 1
O_RDONLY, O_WRONLY, O_RDWR, O_APPEND, O_CREAT, O_EXCL, O_TRUNC = 0, 1, 2, 1024, 64, 128, 512
O_NONBLOCK, O_CLOEXEC, O_DIRECTORY, O_NOFOLLOW = 2048, 524288, 65536, 131072
WNOHANG = 1
EX_OK = 0
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2


def _denied(*args, **kwargs):
    raise PermissionError(_errno.EACCES, "Permission denied (azr-sandbox: no host access)")


# Everything that reaches outside the interpreter: files, directories, processes,
# environment, users, terminals, signals. All denied.
for _name in (
    "access", "chdir", "chmod", "chown", "chroot", "close", "closerange", "device_encoding",
    "dup", "dup2", "execv", "execve", "fchdir", "fchmod", "fchown", "fdatasync", "fork",
    "fstat", "fsync", "ftruncate", "get_blocking", "get_inheritable", "getegid", "geteuid",
    "getgid", "getgroups", "getlogin", "getppid", "getuid", "isatty", "kill", "killpg",
    "lchown", "link", "listdir", "lseek", "lstat", "mkdir", "mkfifo", "mknod", "nice", "open",
    "openpty", "pipe", "putenv", "read", "readlink", "remove", "rename", "replace", "rmdir",
    "scandir", "set_blocking", "set_inheritable", "setegid", "seteuid", "setgid", "setsid",
    "setuid", "spawnv", "stat", "statvfs", "symlink", "system", "truncate", "umask",
    "unlink", "unsetenv", "utime", "wait", "waitpid", "write", "posix_spawn", "sendfile",
    "ttyname", "sync", "times", "get_terminal_size", "abort", "_exit",
):
    globals()[_name] = _denied
del _name


def register_at_fork(*, before=None, after_in_child=None, after_in_parent=None):
    """Accepted and ignored: the guest never forks (`random` registers a reseed hook)."""


def getcwd():
    return "/"


def getcwdb():
    return b"/"


def getpid():
    return 1


def cpu_count():
    return 1


def strerror(code):
    return "error %d" % code


def fspath(path):
    if isinstance(path, (str, bytes)):
        return path
    method = getattr(type(path), "__fspath__", None)
    if method is None:
        raise TypeError(
            "expected str, bytes or os.PathLike object, not " + type(path).__name__
        )
    result = method(path)
    if not isinstance(result, (str, bytes)):
        raise TypeError("expected %s.__fspath__() to return str or bytes" % type(path).__name__)
    return result


# Seeded, so programs that draw from `os.urandom` (or `random.SystemRandom`) are as
# deterministic as everything else in the sandbox.
_urandom_source = _random.Random(0x5EED)


def urandom(size):
    if size < 0:
        raise ValueError("negative argument not allowed")
    if size == 0:
        return b""
    return _urandom_source.getrandbits(8 * size).to_bytes(size, "little")


def waitstatus_to_exitcode(status):
    return status >> 8


class terminal_size(tuple):
    columns = property(lambda self: self[0])
    lines = property(lambda self: self[1])


class stat_result(tuple):
    st_mode = property(lambda self: self[0])
    st_size = property(lambda self: self[6])


class uname_result(tuple):
    sysname = property(lambda self: self[0])
    nodename = property(lambda self: self[1])
    release = property(lambda self: self[2])
    version = property(lambda self: self[3])
    machine = property(lambda self: self[4])


def uname():
    return uname_result(("wasi", "azr-sandbox", "0", "0", "wasm32"))


def _lock_down_files():
    """Make `open` fail as CPython does when access is denied.

    Without the host environment RustPython has no `FileIO`, and `open` fails with
    `UnsupportedOperation`; programs written for CPython expect an `OSError` subclass.
    Called once by the guest's start-up code.
    """
    import builtins
    import io

    def open(file, mode="r", buffering=-1, encoding=None, errors=None, newline=None,
             closefd=True, opener=None):
        raise PermissionError(
            _errno.EACCES, "Permission denied (azr-sandbox: no filesystem)", file
        )

    builtins.open = open
    io.open = open
