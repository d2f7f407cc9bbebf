"""Messages of the worker protocol (version :data:`PROTOCOL_VERSION`).

Request, one JSON object on the first line of stdin::

    {"protocol": 1, "task": "sample_covariates", "params": {...}}

Later stdin lines may carry ``{"type": "cancel"}``. Replies are JSON lines on stdout, each with
``protocol`` and ``type``: ``progress`` (``percent``, ``message``), ``log`` (``level``, ``message``),
then exactly one of ``result`` (``outputs``) or ``error`` (``code``, ``message``).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

PROTOCOL_VERSION = 1

#: Exit codes, so a supervisor can tell the endings apart without reading the lines.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_REQUEST = 2
EXIT_CANCELLED = 3
EXIT_INTERNAL = 4


class BadRequest(Exception):
    """A request that does not follow the protocol; ``code`` is sent with the error line."""

    def __init__(self, message: str, code: str = "bad_request") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Request:
    task: str
    params: dict[str, Any]


def parse_request(line: str) -> Request:
    """Parse and check the request line."""
    try:
        message = json.loads(line)
    except json.JSONDecodeError as err:
        raise BadRequest(f"The request is not valid JSON: {err}.") from err
    if not isinstance(message, dict):
        raise BadRequest("The request must be a JSON object.")
    version = message.get("protocol")
    if version != PROTOCOL_VERSION:
        raise BadRequest(
            f"The request speaks protocol {version!r}; this worker speaks {PROTOCOL_VERSION}. "
            "Update the plugin and the core environment together.",
            code="protocol_version",
        )
    task, params = message.get("task"), message.get("params", {})
    if not isinstance(task, str) or not isinstance(params, dict):
        raise BadRequest("The request needs a 'task' name and a 'params' object.")
    return Request(task=task, params=params)


class Emitter:
    """Writes protocol lines to one stream, whole lines only, from any thread.

    Progress lines are rate-limited (a change of at least 0.5 % or 0.25 s) so a fast loop cannot flood
    the reader; logs, results and errors are always written.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._last_percent = -1.0
        self._last_time = 0.0

    def send(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"protocol": PROTOCOL_VERSION, "type": kind, **fields}, default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def progress(self, fraction: float, message: str = "") -> None:
        percent = round(100.0 * min(max(fraction, 0.0), 1.0), 1)
        now = time.monotonic()
        if percent - self._last_percent < 0.5 and now - self._last_time < 0.25 and percent < 100:
            return
        self._last_percent, self._last_time = percent, now
        self.send("progress", percent=percent, message=message)

    def log(self, message: str, level: str = "info") -> None:
        self.send("log", level=level, message=message)
