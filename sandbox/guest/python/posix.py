"""A `posix` module that grants nothing of the host.

RustPython's `os.py` needs a `posix` (or `nt`) module to import, and `random`, `statistics`,
`contextlib`, `dataclasses`, `tempfile` … need `os`. The guest has no host environment: this
module gives `os` the names it looks for, answers the questions that have a harmless answer
(the environment is empty, `urandom` is seeded and deterministic), serves files and
directories from the interpreter's own memory (`_azr_files`: what a caller sent, and what the
program writes), and raises `PermissionError` for everything that would touch a descriptor,
a process, the environment or a socket. WASI would deny those calls anyway (no preopened
directories, no environment, no sockets); failing here first gives programs CPython's
exception types.
"""

import errno as _errno
import _random

from _azr_files import (  # noqa: F401  (the names `os` looks for)
    DirEntry, access, chdir, fspath, getcwd, getcwdb, listdir, lstat, mkdir, remove, rename,
    replace, rmdir, scandir, stat, stat_result, strerror, truncate, unlink, utime,
)

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


# Everything that reaches outside the interpreter: descriptors, links, processes,
# environment, users, terminals, signals. All denied.
for _name in (
    "chmod", "chown", "chroot", "close", "closerange", "device_encoding",
    "dup", "dup2", "execv", "execve", "fchdir", "fchmod", "fchown", "fdatasync", "fork",
    "fstat", "fsync", "ftruncate", "get_blocking", "get_inheritable", "getegid", "geteuid",
    "getgid", "getgroups", "getlogin", "getppid", "getuid", "isatty", "kill", "killpg",
    "lchown", "link", "lseek", "mkfifo", "mknod", "nice", "open",
    "openpty", "pipe", "putenv", "read", "readlink", "set_blocking", "set_inheritable",
    "setegid", "seteuid", "setgid", "setsid", "setuid", "spawnv", "statvfs", "symlink",
    "system", "umask", "unsetenv", "wait", "waitpid", "write", "posix_spawn", "sendfile",
    "ttyname", "sync", "times", "get_terminal_size", "abort", "_exit",
):
    globals()[_name] = _denied
del _name


def register_at_fork(*, before=None, after_in_child=None, after_in_parent=None):
    """Accepted and ignored: the guest never forks (`random` registers a reseed hook)."""


def getpid():
    return 1


def cpu_count():
    return 1


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


class uname_result(tuple):
    sysname = property(lambda self: self[0])
    nodename = property(lambda self: self[1])
    release = property(lambda self: self[2])
    version = property(lambda self: self[3])
    machine = property(lambda self: self[4])


def uname():
    return uname_result(("wasi", "azr-sandbox", "0", "0", "wasm32"))


def _serve_files():
    """`open` on the in-memory files, and their modules importable.

    Without the host environment RustPython has no `FileIO`, and `open` would fail with
    `UnsupportedOperation`. Called once by the guest's start-up code.
    """
    import _azr_files

    _azr_files._install_open()
    _azr_files._install_finder()
