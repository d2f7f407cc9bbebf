"""Where the core environment is: the interpreter that runs the worker, and how it was found.

Order: the ``SOILCARBON_CORE_PYTHON`` environment variable, then the path saved on the settings page,
then the environment that ``make setup`` created (it leaves a pointer file in its cache folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import QgsSettings

ENV_VARIABLE = "SOILCARBON_CORE_PYTHON"
SETTINGS_KEY = "soilcarbon/core_python"
PLUGIN_DIR = Path(__file__).resolve().parent


def setup_pointer_file() -> Path:
    """The file in which ``make setup`` records its core interpreter."""
    cache = os.environ.get("SOILCARBON_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "soilcarbon"
    )
    return Path(cache) / "core-python"


def detected_core_python() -> str | None:
    """The interpreter of the environment ``make setup`` built, if there is one."""
    pointer = setup_pointer_file()
    try:
        path = pointer.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return path or None


def saved_core_python() -> str:
    return str(QgsSettings().value(SETTINGS_KEY, "", type=str) or "")


def save_core_python(path: str) -> None:
    QgsSettings().setValue(SETTINGS_KEY, path.strip())


def core_python() -> tuple[str | None, str]:
    """The core interpreter to use and where that choice came from (for messages)."""
    from_env = os.environ.get(ENV_VARIABLE, "").strip()
    if from_env:
        return from_env, f"the {ENV_VARIABLE} environment variable"
    saved = saved_core_python()
    if saved:
        return saved, "the plugin settings"
    detected = detected_core_python()
    if detected:
        return detected, f"the set-up's environment ({setup_pointer_file()})"
    return None, "nowhere"


def core_source_root() -> Path | None:
    """The folder holding the ``soilcarbon_core`` package that matches this plugin.

    A packaged plugin carries it in ``core/``; in a source checkout it sits beside ``plugin/``. None
    means: use whatever the core environment has installed.
    """
    for candidate in (PLUGIN_DIR / "core", PLUGIN_DIR.parent):
        if (candidate / "soilcarbon_core" / "__init__.py").is_file():
            return candidate
    return None
