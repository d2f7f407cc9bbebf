"""Entry point: ``python -m soilcarbon_core.worker`` (protocol in ``docs/worker-protocol.md``).

stdout carries protocol lines only: the real stdout is kept for them and file descriptor 1 is pointed
at stderr, so prints and C-library chatter cannot corrupt the stream. Cancelling (SIGTERM, SIGINT or a
``{"type": "cancel"}`` line) is cooperative: the next progress report raises ``Cancelled`` and every
output being written is removed; a result already complete is still reported.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
import threading
import traceback

from soilcarbon_core.errors import Cancelled, SoilCarbonError
from soilcarbon_core.worker.protocol import (
    EXIT_BAD_REQUEST,
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_OK,
    BadRequest,
    Emitter,
    parse_request,
)
from soilcarbon_core.worker.tasks import TASKS, TaskContext


def _claim_stdout() -> io.TextIOWrapper:
    """A private stream on the original stdout; fd 1 (and ``sys.stdout``) then go to stderr."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return io.TextIOWrapper(os.fdopen(protocol_fd, "wb", buffering=0), encoding="utf-8")


def _watch_stdin(cancel: threading.Event) -> None:
    """Read control lines after the request; a cancel line sets ``cancel``."""
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and message.get("type") == "cancel":
            cancel.set()
            return


def main() -> int:
    emitter = Emitter(_claim_stdout())
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    cancel = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: cancel.set())

    try:
        line = sys.stdin.readline()
        if not line.strip():
            raise BadRequest("No request arrived on stdin.")
        request = parse_request(line)
        if request.task not in TASKS:
            raise BadRequest(
                f"Unknown task '{request.task}'; this worker knows: {', '.join(sorted(TASKS))}.",
                code="unknown_task",
            )
    except BadRequest as err:
        emitter.send("error", code=err.code, message=str(err))
        return EXIT_BAD_REQUEST
    threading.Thread(target=_watch_stdin, args=(cancel,), daemon=True).start()

    def progress(fraction: float, message: str = "") -> None:
        if cancel.is_set():
            raise Cancelled("Cancelled; no output was written.")
        emitter.progress(fraction, message)

    context = TaskContext(progress=progress, log=emitter.log)
    try:
        outputs = TASKS[request.task](request.params, context)
    except Cancelled as err:
        emitter.send("error", code=err.code, message=str(err))
        return EXIT_CANCELLED
    except BadRequest as err:
        emitter.send("error", code=err.code, message=str(err))
        return EXIT_BAD_REQUEST
    except SoilCarbonError as err:
        emitter.send("error", code=err.code, message=str(err))
        return EXIT_ERROR
    except ModuleNotFoundError as err:
        emitter.send(
            "error",
            code="missing_package",
            message=f"This Python ('{sys.executable}') lacks the package '{err.name}' that soilcarbon_core "
            "needs: it is not the core environment, or that environment is incomplete.",
        )
        return EXIT_ERROR
    except Exception as err:  # noqa: BLE001 - a bug: report it, never a bare traceback to the user
        traceback.print_exc(file=sys.stderr)
        emitter.send(
            "error",
            code="internal",
            message=f"Internal error in task '{request.task}': {type(err).__name__}: {err}. "
            "This is a bug; the worker log (stderr) has the details.",
        )
        return EXIT_INTERNAL
    emitter.progress(1.0, "Done")
    emitter.send("result", outputs=outputs)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
