"""Creating the core environment from inside QGIS: which Python, which folder, which commands.

No widgets here: the settings page runs a :class:`Plan`'s steps one after another with ``QProcess``.
The commands mirror ``scripts/setup-env.sh core``: a plain venv, pip upgraded, then
``pip install --isolated -c core.lock -r core.in`` (``--isolated`` ignores pip configuration files and
``PIP_*`` variables, which on some machines point pip at a CPU-only torch that does not match PyPI's
torchvision), then the same import check.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .worker_client import STRIPPED_VARIABLES

MIN_PYTHON = (3, 11)
FOLDER_NAME = "core-plugin"
PIP_INSTALL = ("-m", "pip", "install", "--isolated", "--disable-pip-version-check", "--progress-bar", "off")
#: The last step: the stack imports, and torch and torchvision are the same build (as setup-env.sh checks).
VERIFY = """\
import numpy, rasterio, terratorch, torch, torch_geometric, torchvision
assert numpy.__version__.startswith("2."), f"numpy {numpy.__version__}: the core needs numpy 2"
assert torch.__version__.split("+")[1:] == torchvision.__version__.split("+")[1:], (
    f"torch {torch.__version__} and torchvision {torchvision.__version__} are different builds")
print(f"core environment ok: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"torch_geometric {torch_geometric.__version__}, rasterio {rasterio.__version__}, "
      f"numpy {numpy.__version__}")
"""
_PROBE = "import sys; print(sys.version_info[0], sys.version_info[1], sys.executable)"


class CoreEnvError(Exception):
    """The environment cannot be created as asked; the message names the problem and the fix."""


@dataclass(frozen=True)
class Requirements:
    """The requirement files of the core environment: top-level pins and the full lock (constraints)."""

    requirements: Path
    constraints: Path


@dataclass(frozen=True)
class Step:
    title: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """The commands that create the environment in ``folder``; ``python`` is its interpreter."""

    folder: Path
    python: Path
    steps: tuple[Step, ...]


def cache_folder() -> Path:
    """The soil-carbon cache: ``SOILCARBON_CACHE``, else the platform's user cache folder."""
    if os.environ.get("SOILCARBON_CACHE"):
        return Path(os.environ["SOILCARBON_CACHE"])
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~/AppData/Local")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "soilcarbon"


def default_folder() -> Path:
    return cache_folder() / "envs" / FOLDER_NAME


def venv_python(folder: Path) -> Path:
    """The interpreter of the venv in ``folder``."""
    return folder / "Scripts" / "python.exe" if sys.platform == "win32" else folder / "bin" / "python"


def find_requirements(plugin_dir: Path) -> Requirements:
    """The requirement files: ``core/requirements`` in a staged plugin, ``requirements`` in a checkout."""
    for folder in (plugin_dir / "core" / "requirements", plugin_dir.parent / "requirements"):
        files = Requirements(folder / "core.in", folder / "core.lock")
        if files.requirements.is_file() and files.constraints.is_file():
            return files
    raise CoreEnvError(
        "The plugin's requirement files (core.in, core.lock) are in neither "
        f"{plugin_dir / 'core' / 'requirements'} nor a source checkout: reinstall the plugin from its zip."
    )


def candidate_pythons() -> list[tuple[str, ...]]:
    """Commands that may start a suitable base Python, the preferred first."""
    names = ["python3", "python3.13", "python3.12", "python3.11", "python"]
    candidates = [(found,) for name in names if (found := shutil.which(name))]
    if sys.platform == "win32" and (launcher := shutil.which("py")):
        candidates.append((launcher, "-3"))
    if Path("/usr/bin/python3").is_file():
        candidates.append(("/usr/bin/python3",))
    return candidates


def probe_python(command: Iterable[str]) -> tuple[tuple[int, int], str] | None:
    """The version and the real executable of the Python that ``command`` starts, or None."""
    try:
        done = subprocess.run(
            [*command, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=15,
            env=process_environment(),
            stdin=subprocess.DEVNULL,
        )
        major, minor, executable = done.stdout.strip().split(" ", 2)
        return (int(major), int(minor)), executable
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def find_base_python(candidates: Iterable[tuple[str, ...]] | None = None) -> tuple[str, tuple[int, int]]:
    """The first Python >= 3.11 among ``candidates`` (default: :func:`candidate_pythons`) and its version."""
    for command in candidate_pythons() if candidates is None else candidates:
        found = probe_python(command)
        if found is not None and found[0] >= MIN_PYTHON:
            return found[1], found[0]
    wanted = ".".join(map(str, MIN_PYTHON))
    raise CoreEnvError(
        f"No Python {wanted} or later was found (looked for python3, python3.11-3.13 and python on PATH). "
        f"Install Python {wanted}+ from python.org or your package manager, then try again; or build the "
        "environment with 'make setup' and give its interpreter above."
    )


def check_folder(folder: Path) -> None:
    """Refuse a folder that holds anything: creating there could mix or delete the user's files."""
    if folder.is_file() or (folder.is_dir() and any(folder.iterdir())):
        raise CoreEnvError(
            f"'{folder}' already exists and is not empty: choose another folder, or delete it first."
        )


def plan(folder: Path, base_python: str, requirements: Requirements) -> Plan:
    """The steps that create the core environment in ``folder`` with ``base_python``."""
    python = venv_python(folder)
    return Plan(
        folder=folder,
        python=python,
        steps=(
            Step("Creating the virtual environment", (base_python, "-m", "venv", str(folder))),
            Step("Upgrading pip", (str(python), *PIP_INSTALL, "--upgrade", "pip")),
            Step(
                "Installing the packages (about 6 GB; several minutes)",
                (
                    str(python),
                    *PIP_INSTALL,
                    "-c",
                    str(requirements.constraints),
                    "-r",
                    str(requirements.requirements),
                ),
            ),
            Step("Checking the packages", (str(python), "-c", VERIFY)),
        ),
    )


def process_environment() -> dict[str, str]:
    """The commands' environment: QGIS's Python, PROJ and GDAL variables stripped, output unbuffered."""
    env = {key: value for key, value in os.environ.items() if key not in STRIPPED_VARIABLES}
    env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", PYTHONNOUSERSITE="1")
    return env


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process it started, directly or not, the deepest first (on Windows: ``[pid]``).

    A step's own children (venv runs ensurepip, pip runs build back-ends) must stop with it: left running,
    they would write into the folder a cancel removes.
    """
    if sys.platform == "win32":
        return [pid]  # taskkill /T finds the tree itself
    try:
        listing = subprocess.run(
            ["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return [pid]
    children: dict[int, list[int]] = {}
    for line in listing.split("\n"):
        if line.strip():
            child, parent = map(int, line.split())
            children.setdefault(parent, []).append(child)
    tree, generation = [pid], [pid]
    while generation:
        generation = [child for parent in generation for child in children.get(parent, [])]
        tree = generation + tree
    return tree


def stop(tree: list[int], force: bool) -> None:
    """Ask the processes of ``tree`` to stop (SIGTERM), or kill them when ``force``."""
    if sys.platform == "win32":  # console programs ignore a polite close: end the tree at once
        subprocess.run(["taskkill", "/PID", str(tree[-1]), "/T", "/F"], capture_output=True, timeout=30)
        return
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL if force else signal.SIGTERM)
        except ProcessLookupError:
            pass


def running(tree: list[int]) -> bool:
    """Whether any process of ``tree`` still exists (always False on Windows, where :func:`stop` waits)."""
    if sys.platform == "win32":
        return False  # os.kill(pid, 0) would terminate the process there
    for pid in tree:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass  # the pid exists (reused by another user's process)
        return True
    return False


def remove_folder(folder: Path) -> bool:
    """Remove a half-made environment; False when some of it could not be removed (a file in use)."""
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()
