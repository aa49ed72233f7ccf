"""Runs the AZR reference's trainer with `azr_sandbox.azr.PythonExecutor` as its executor,
without editing the reference's files:

    python -m azr_sandbox.azr_reference <the reference's hydra overrides>

in place of `python -m absolute_zero_reasoner.main_azr_ppo <overrides>` (its
`scripts/selfplay/*.sh`), with `AZR_SANDBOX_SOCKET` naming the node's daemon. The reference
imports its executor class by name into its trainer module; this puts ours in its place
before the entry point runs, in this process and, through `ray.init`'s
`worker_process_setup_hook`, in every Ray worker process (the trainer runs inside a Ray
actor). `--entry MODULE` runs another entry point.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
from typing import Any

from .client import SOCKET_ENV

EXECUTOR_MODULE = "absolute_zero_reasoner.utils.code_utils.python_executor"
"""Where the reference defines `PythonExecutor`."""

TRAINER_MODULE = "absolute_zero_reasoner.trainer.ppo.azr_ray_trainer"
"""The module that imports it by name (`from ... import PythonExecutor`)."""

ENTRY = "absolute_zero_reasoner.main_azr_ppo"
"""The reference's hydra entry point."""

SETUP_HOOK = "azr_sandbox.azr_reference.install"


def install() -> None:
    """Puts our executor in place of the reference's in this process: in its defining module
    (so that a trainer module imported later binds ours) and in the trainer module if it is
    already imported. Ray calls this in each worker process as it starts."""
    from .azr import PythonExecutor

    try:
        module = importlib.import_module(EXECUTOR_MODULE)
    except ImportError as e:
        raise SystemExit(
            f"azr_sandbox.azr_reference: cannot import the AZR reference's {EXECUTOR_MODULE} "
            f"({e}); run from the reference's checkout or install it"
        ) from e
    module.PythonExecutor = PythonExecutor  # type: ignore[attr-defined]
    trainer = sys.modules.get(TRAINER_MODULE)
    if trainer is not None:
        trainer.PythonExecutor = PythonExecutor  # type: ignore[attr-defined]


def _hook_ray() -> None:
    """Makes `ray.init` start every worker with `install()` and the daemon's socket."""
    try:
        ray: Any = importlib.import_module("ray")
    except ImportError:
        return
    original = ray.init

    def init(*args: Any, **kwargs: Any) -> Any:
        env = dict(kwargs.get("runtime_env") or {})
        env.setdefault("worker_process_setup_hook", SETUP_HOOK)
        if SOCKET_ENV in os.environ:
            env_vars = dict(env.get("env_vars") or {})
            env_vars.setdefault(SOCKET_ENV, os.environ[SOCKET_ENV])
            env["env_vars"] = env_vars
        kwargs["runtime_env"] = env
        return original(*args, **kwargs)

    ray.init = init


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    entry = ENTRY
    if args[:1] == ["--entry"]:
        if len(args) < 2:
            raise SystemExit("azr_sandbox.azr_reference: --entry needs a module name")
        entry, args = args[1], args[2:]
    install()
    _hook_ray()
    sys.argv = [entry, *args]
    runpy.run_module(entry, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
