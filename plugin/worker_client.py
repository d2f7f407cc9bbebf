"""Run a task in the core worker process and stream its progress into a QGIS feedback object.

The worker is started without a shell, with a clean environment: nothing of QGIS's Python, PROJ, GDAL
or library paths leaks into it (its rasterio bundles its own GDAL and PROJ, which refuse a foreign
``proj.db``). Cancelling sends a cancel line and SIGTERM, then kills the worker after a grace period
and removes the partial outputs it was writing.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections import deque
from typing import Any, Protocol

from .outputs import partial_outputs
from .settings import ENV_VARIABLE, core_python, core_source_root

PROTOCOL_VERSION = 1
CANCEL_GRACE_SECONDS = 10.0

#: Variables a QGIS process may carry that would break the core environment's own libraries.
STRIPPED_VARIABLES = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONEXECUTABLE",
    "PROJ_LIB",
    "PROJ_DATA",
    "GDAL_DATA",
    "GDAL_DRIVER_PATH",
    "GDAL_PLUGINS",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "DYLD_LIBRARY_PATH",
    "DYLD_FALLBACK_LIBRARY_PATH",
    "QGIS_PREFIX_PATH",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
)


class Feedback(Protocol):
    """The part of ``QgsProcessingFeedback`` the client uses."""

    def isCanceled(self) -> bool: ...
    def setProgress(self, progress: float) -> None: ...
    def setProgressText(self, text: str) -> None: ...
    def pushInfo(self, info: str) -> None: ...
    def pushWarning(self, warning: str) -> None: ...
    def pushDebugInfo(self, info: str) -> None: ...


class WorkerError(Exception):
    """The worker reported an error, could not start, or died; ``message`` is for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def clean_environment() -> dict[str, str]:
    """The environment the worker runs with."""
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED_VARIABLES}
    source = core_source_root()
    if source is not None:
        # soilcarbon_core, and the trainers (soilcarbon_training) that sit in training/ beside it.
        env["PYTHONPATH"] = os.pathsep.join([str(source), str(source / "training")])
    env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", PYTHONNOUSERSITE="1")
    return env


FIX_INTERPRETER = (
    "Set the path under Settings › Options › Soil Carbon (or the "
    f"{ENV_VARIABLE} environment variable), or create the environment with 'make setup'."
)


def resolve_interpreter() -> tuple[str, str]:
    """The core interpreter and where it came from, or a :class:`WorkerError` that says how to set it."""
    python, origin = core_python()
    if python is None:
        raise WorkerError(
            "worker_not_found", f"The soil-carbon core environment was not found. {FIX_INTERPRETER}"
        )
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise WorkerError(
            "worker_not_found",
            f"The core interpreter '{python}' (from {origin}) does not exist or cannot be run. "
            + FIX_INTERPRETER,
        )
    return python, origin


def run_task(
    task: str,
    params: dict[str, Any],
    feedback: Feedback,
    *,
    outputs: list[str] = (),
    progress_range: tuple[float, float] = (0.0, 100.0),
) -> dict[str, Any]:
    """Run ``task`` in a new worker and return its ``outputs``.

    Args:
        outputs: files the task writes; their partial versions are removed if the worker is killed.
        progress_range: the part of the feedback's 0-100 scale the task's progress maps to.
    Raises:
        WorkerError: on any failure, ``code`` ``cancelled`` when the feedback was cancelled.
    """
    python, origin = resolve_interpreter()
    try:
        process = subprocess.Popen(
            [python, "-m", "soilcarbon_core.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_environment(),
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
    except OSError as err:
        raise WorkerError(
            "worker_not_found",
            f"The core interpreter '{python}' (from {origin}) cannot be started: {err}. {FIX_INTERPRETER}",
        ) from err

    lines: queue.Queue[str | None] = queue.Queue()
    stderr_tail: deque[str] = deque(maxlen=40)

    def pump_stdout() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    def pump_stderr() -> None:
        for line in process.stderr:
            stderr_tail.append(line.rstrip())

    threading.Thread(target=pump_stdout, daemon=True).start()
    threading.Thread(target=pump_stderr, daemon=True).start()
    try:
        process.stdin.write(json.dumps({"protocol": PROTOCOL_VERSION, "task": task, "params": params}) + "\n")
        process.stdin.flush()
    except OSError:
        pass  # the worker died at start; its exit code and log tell why below

    start, end = progress_range
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    cancelled_at: float | None = None
    while True:
        if feedback.isCanceled() and cancelled_at is None:
            cancelled_at = time.monotonic()
            _request_cancel(process)
        elif cancelled_at is not None and time.monotonic() - cancelled_at > CANCEL_GRACE_SECONDS:
            process.kill()
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            break
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            feedback.pushDebugInfo(f"worker: {line.rstrip()}")
            continue
        kind = message.get("type")
        if kind == "progress":
            feedback.setProgress(start + (end - start) * float(message.get("percent", 0.0)) / 100.0)
            if message.get("message"):
                feedback.setProgressText(message["message"])
        elif kind == "log":
            push = feedback.pushWarning if message.get("level") == "warning" else feedback.pushInfo
            push(message.get("message", ""))
        elif kind == "result":
            result = message.get("outputs", {})
        elif kind == "error":
            error = message
    returncode = process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        try:
            stream.close()
        except OSError:
            pass  # a broken pipe to a worker that already exited
    for line in stderr_tail:
        feedback.pushDebugInfo(f"worker: {line}")

    if cancelled_at is not None and result is None:
        for output in outputs:
            for leftover in partial_outputs(output, process.pid):
                leftover.unlink(missing_ok=True)
        raise WorkerError("cancelled", "Cancelled; no output was written.")
    if error is not None and error.get("code") == "missing_package":
        raise WorkerError(
            "worker_not_found", f"'{python}' (from {origin}): {error['message']} {FIX_INTERPRETER}"
        )
    if error is not None:
        raise WorkerError(str(error.get("code", "error")), str(error.get("message", "Unknown error.")))
    missing = [line for line in stderr_tail if line.startswith("ModuleNotFoundError")]
    if result is None and missing:
        raise WorkerError(
            "worker_not_found",
            f"'{python}' (from {origin}) is not a soil-carbon core environment ({missing[-1]}). "
            + FIX_INTERPRETER,
        )
    if result is None:
        log = "\n".join(stderr_tail) or "(empty)"
        raise WorkerError(
            "worker_crashed",
            f"The worker ({python}) stopped without a result (exit code {returncode}). "
            f"The end of its log:\n{log}",
        )
    return result


def _request_cancel(process: subprocess.Popen) -> None:
    try:
        process.stdin.write(json.dumps({"protocol": PROTOCOL_VERSION, "type": "cancel"}) + "\n")
        process.stdin.flush()
    except OSError:
        pass
    process.terminate()
