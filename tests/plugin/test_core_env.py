"""Creating the core environment from the settings page: the commands, the requirement files, the base
Python, and the page's real QProcess flow (log, success, failure, cancel), offline and in seconds."""

from __future__ import annotations

import dataclasses
import stat
import sys
import time
from pathlib import Path

import pytest
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QEventLoop

from plugin import core_env
from plugin.core_env import CoreEnvError, Requirements, Step
from plugin.settings import ENV_VARIABLE, save_core_python, saved_core_python

from .conftest import ROOT

PIP = ("-m", "pip", "install", "--isolated", "--disable-pip-version-check", "--progress-bar", "off")


def test_plan_mirrors_the_set_up_script(tmp_path):
    folder = tmp_path / "envs" / "core-plugin"
    files = Requirements(
        Path("/plugin/core/requirements/core.in"), Path("/plugin/core/requirements/core.lock")
    )
    plan = core_env.plan(folder, "/usr/bin/python3.11", files)
    python = str(folder / "bin" / "python")
    assert plan.folder == folder and plan.python == folder / "bin" / "python"
    assert [step.argv for step in plan.steps] == [
        ("/usr/bin/python3.11", "-m", "venv", str(folder)),
        (python, *PIP, "--upgrade", "pip"),
        (
            python,
            *PIP,
            "-c",
            "/plugin/core/requirements/core.lock",
            "-r",
            "/plugin/core/requirements/core.in",
        ),
        (python, "-c", core_env.VERIFY),
    ]
    assert "import numpy, rasterio, terratorch, torch, torch_geometric, torchvision" in core_env.VERIFY


def test_windows_venv_interpreter(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "win32")
    assert core_env.venv_python(tmp_path) == tmp_path / "Scripts" / "python.exe"


def test_default_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("SOILCARBON_CACHE", str(tmp_path / "cache"))
    assert core_env.default_folder() == tmp_path / "cache" / "envs" / "core-plugin"
    monkeypatch.delenv("SOILCARBON_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert core_env.default_folder() == tmp_path / "xdg" / "soilcarbon" / "envs" / "core-plugin"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert core_env.default_folder() == tmp_path / "local" / "soilcarbon" / "envs" / "core-plugin"


def test_requirements_in_a_checkout_and_in_a_staged_plugin(tmp_path):
    checkout = core_env.find_requirements(ROOT / "plugin")
    assert checkout == Requirements(ROOT / "requirements" / "core.in", ROOT / "requirements" / "core.lock")

    from .test_package import stage_plugin

    staged = stage_plugin.stage(tmp_path / "plugins")
    found = core_env.find_requirements(staged)
    assert found == Requirements(
        staged / "core" / "requirements" / "core.in", staged / "core" / "requirements" / "core.lock"
    )
    (staged / "core" / "requirements" / "core.lock").unlink()
    with pytest.raises(CoreEnvError, match=r"requirement files \(core\.in, core\.lock\) are in neither"):
        core_env.find_requirements(staged)


def fake_python(path: Path, version: str) -> Path:
    path.write_text(f'#!/bin/sh\necho "{version} /opt/python{version.replace(" ", ".")}/bin/python"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="shell-script stand-ins for Python")
def test_base_python_is_the_first_new_enough(tmp_path):
    old = fake_python(tmp_path / "python3.9", "3 9")
    new = fake_python(tmp_path / "python3.12", "3 12")
    candidates = [("/nonexistent/python3",), (str(old),), (str(new),), (sys.executable,)]
    assert core_env.find_base_python(candidates) == ("/opt/python3.12/bin/python", (3, 12))
    with pytest.raises(CoreEnvError, match=r"No Python 3\.11 or later was found .*python\.org"):
        core_env.find_base_python([(str(old),), ("/nonexistent/python3",)])
    executable, version = core_env.find_base_python()  # this machine has one
    assert version >= (3, 11) and Path(executable).is_file()


def test_folder_must_be_new_or_empty(tmp_path):
    core_env.check_folder(tmp_path / "new")
    core_env.check_folder(tmp_path)  # empty
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CoreEnvError, match="already exists and is not empty: choose another folder"):
        core_env.check_folder(tmp_path)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process tree")
def test_process_tree_and_stop():
    import subprocess

    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(60)']); print('started', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout.readline() == "started\n"
        tree = core_env.process_tree(parent.pid)
        assert len(tree) == 2 and tree[-1] == parent.pid and core_env.running(tree)
        core_env.stop(tree, force=False)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while core_env.running(tree):  # the orphaned child is reaped by init
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()


def test_commands_do_not_inherit_qgis_python_variables(monkeypatch):
    monkeypatch.setenv("PYTHONHOME", "/qgis/apps/Python39")
    monkeypatch.setenv("PYTHONPATH", "/qgis/python")
    env = core_env.process_environment()
    assert "PYTHONHOME" not in env and "PYTHONPATH" not in env
    assert env["PYTHONUNBUFFERED"] == "1"


# The page's QProcess flow, for real.


@pytest.fixture
def page(qgis_app, monkeypatch):
    from plugin.options_page import SoilCarbonOptionsFactory

    monkeypatch.delenv(ENV_VARIABLE, raising=False)  # the check after creation uses the saved interpreter
    save_core_python("")
    page = SoilCarbonOptionsFactory().createWidget()
    page.outcomes = []

    def record(ok: bool, message: str) -> None:
        page.outcomes.append((ok, message))

    page.builder.done.connect(record)
    yield page
    if page.builder.running():
        page.builder.cancel()
        wait(page, lambda: not page.builder.running())
    page.builder.done.disconnect(record)
    sip.delete(page)  # as the options dialog does: the builder outlives its pages
    save_core_python("")


def wait(page, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, page.log.toPlainText()
        QCoreApplication.processEvents(QEventLoop.AllEvents, 50)
        time.sleep(0.01)


def test_creation_succeeds_shows_its_log_saves_and_checks_the_interpreter(page, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    folder = tmp_path / "env"
    full = core_env.plan(folder, sys.executable, Requirements(empty, empty))
    # Offline: the venv and the (empty) install; upgrading pip and checking torch need the network/packages.
    assert [s.title for s in full.steps[1::2]] == ["Upgrading pip", "Checking the packages"]
    plan = dataclasses.replace(full, steps=full.steps[0::2])
    page.start(plan)
    assert not page.create_button.isEnabled() and page.cancel_button.isEnabled()
    wait(page, lambda: page.outcomes)

    python = folder / "bin" / "python"
    assert page.outcomes == [(True, f"The core environment is ready; its interpreter {python} is saved.")]
    log = page.log.toPlainText()
    assert log.startswith(f"Creating the core environment in {folder}\n")
    assert f"[1/2] Creating the virtual environment\n$ {sys.executable} -m venv {folder}\n" in log
    assert f"[2/2] Installing the packages (about 6 GB; several minutes)\n$ {python} {' '.join(PIP)} " in log
    assert f"-c {empty} -r {empty}\n" in log
    assert python.is_file() and page.create_button.isEnabled() and not page.cancel_button.isEnabled()
    assert saved_core_python() == str(python) and page.interpreter.filePath() == str(python)
    assert page.progress.value() == 2 and page.progress.format() == "Done"
    # The check ran against the new, empty environment: not a core environment, and it says which.
    assert page.status.text().startswith("Not working") and f"'{python}'" in page.status.text()


def test_a_failing_step_stops_the_creation_and_removes_the_folder(page, tmp_path):
    folder = tmp_path / "env"
    plan = core_env.Plan(
        folder,
        folder / "bin" / "python",
        (
            Step("Making the folder", (sys.executable, "-c", f"import os; os.makedirs({str(folder)!r})")),
            Step(
                "Failing", (sys.executable, "-c", "import sys; print('no space left on device'); sys.exit(3)")
            ),
            Step("Never run", (sys.executable, "-c", "open('never', 'w')")),
        ),
    )
    page.start(plan)
    wait(page, lambda: page.outcomes)
    ok, message = page.outcomes[0]
    assert not ok and message.startswith("'Failing' failed (exit code 3); the log above says why.")
    assert message.endswith(f"The half-made environment {folder} was removed.")
    assert "no space left on device\n" in page.log.toPlainText() and "Never run" not in page.log.toPlainText()
    assert not folder.exists() and saved_core_python() == ""


def test_a_program_that_cannot_start_is_reported(page, tmp_path):
    plan = core_env.plan(tmp_path / "env", "/nonexistent/python3", Requirements(tmp_path, tmp_path))
    page.start(plan)
    wait(page, lambda: page.outcomes)
    ok, message = page.outcomes[0]
    assert not ok and message.startswith("'/nonexistent/python3' could not be started")


def test_cancel_stops_the_step_and_removes_the_folder(page, tmp_path):
    from plugin.options_page import SoilCarbonOptionsFactory

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    folder = tmp_path / "env"
    page.start(core_env.plan(folder, sys.executable, Requirements(empty, empty)))
    step = int(page.builder.process.processId())
    # Cancel once venv has started its own child (ensurepip), which must stop with it: left running, it
    # would go on writing into the removed folder.
    wait(page, lambda: folder.exists() and len(core_env.process_tree(step)) > 1)
    tree = core_env.process_tree(step)
    # A page opened meanwhile (the dialog closed and reopened) follows the same creation.
    again = SoilCarbonOptionsFactory().createWidget()
    assert again.log.toPlainText() == page.log.toPlainText() and not again.create_button.isEnabled()
    assert again.progress.format() == "Step 1 of 4: Creating the virtual environment"

    page.cancel_button.click()
    wait(page, lambda: page.outcomes)
    assert page.outcomes == [(False, f"Cancelled. The half-made environment {folder} was removed.")]
    assert not page.builder.running() and not core_env.running(tree)
    time.sleep(1.0)
    assert not folder.exists() and saved_core_python() == ""
    assert "Cancelling" in page.log.toPlainText() and again.create_button.isEnabled()
    sip.delete(again)


def test_create_refuses_a_folder_in_use(page, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    page.folder.setFilePath(str(tmp_path))
    page.create()
    assert not page.builder.running()
    assert page.log.toPlainText() == (
        f"Cannot create the core environment: '{tmp_path}' already exists and is not empty: "
        "choose another folder, or delete it first."
    )
    assert (tmp_path / "notes.txt").read_text() == "mine"
