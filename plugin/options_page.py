"""Settings › Options › Soil Carbon: the core interpreter, where it was found, a live check, and the
creation of the core environment for a plugin installed from a zip."""

from __future__ import annotations

import shlex
from pathlib import Path

from qgis.core import Qgis, QgsMessageLog, QgsProcessingFeedback
from qgis.gui import QgsFileWidget, QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, pyqtSignal
from qgis.PyQt.QtGui import QIcon, QTextCursor
from qgis.PyQt.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from . import core_env
from .settings import (
    ENV_VARIABLE,
    PLUGIN_DIR,
    core_python,
    detected_core_python,
    save_core_python,
    saved_core_python,
)
from .worker_client import WorkerError, run_task

#: How long a cancelled step may take to stop after SIGTERM before it is killed, and the polling period.
KILL_AFTER_MS = 5000
POLL_MS = 100


def describe_environment(info: dict) -> str:
    """A short, human summary of the worker's ``environment`` task result."""
    packages = ", ".join(f"{name} {version or 'missing'}" for name, version in info["packages"].items())
    device = info["device"]
    where = device["name"] + (f" ({device['memory_gib']} GiB)" if "memory_gib" in device else "")
    return (
        f"Working: soilcarbon_core {info['core_version']} on Python {info['python']}\n"
        f"{packages}; GDAL {info['gdal']}\nCompute device: {device['type'].upper()}, {where}"
    )


class EnvironmentBuilder(QObject):
    """Runs a :class:`core_env.Plan` step by step with QProcess, on the main thread, never blocking it.

    One builder serves every settings page (see :func:`environment_builder`), so a creation goes on, and
    saves its interpreter, when the options dialog is closed; a page opened later shows its log.
    """

    output = pyqtSignal(str)
    step_started = pyqtSignal(int, int, str)  # index, number of steps, title
    done = pyqtSignal(bool, str)  # success, message for the user

    def __init__(self) -> None:
        super().__init__()
        self.plan: core_env.Plan | None = None
        self.process: QProcess | None = None
        self.index = 0
        self.cancelled = False
        self.log = ""
        self.tree: list[int] = []  # the processes a cancel stops
        self.waited_ms = 0
        self.poller = QTimer(self)
        self.poller.timeout.connect(self._poll_cancel)

    def running(self) -> bool:
        return self.process is not None

    def start(self, plan: core_env.Plan) -> None:
        self.plan, self.index, self.cancelled, self.log = plan, 0, False, ""
        self._write(f"Creating the core environment in {plan.folder}\n")
        self._run_step()

    def cancel(self) -> None:
        """Stop the step and every process it started (terminate, then kill), then remove the folder."""
        if self.process is None or self.cancelled:
            return
        self.cancelled = True
        self._write("\nCancelling…\n")
        self.tree = core_env.process_tree(int(self.process.processId()))
        core_env.stop(self.tree, force=False)
        self.waited_ms = 0
        self.poller.start(POLL_MS)

    def _poll_cancel(self) -> None:
        """End a cancel once no process of the step is left, killing them after :data:`KILL_AFTER_MS`."""
        self.waited_ms += POLL_MS
        gone = self.process.state() == QProcess.NotRunning and not core_env.running(self.tree)
        if not gone and self.waited_ms == KILL_AFTER_MS:
            core_env.stop(self.tree, force=True)
        if gone or self.waited_ms >= 2 * KILL_AFTER_MS:
            self.poller.stop()
            self._end(False, "Cancelled.")

    def _run_step(self) -> None:
        step = self.plan.steps[self.index]
        count = len(self.plan.steps)
        self.step_started.emit(self.index, count, step.title)
        self._write(f"\n[{self.index + 1}/{count}] {step.title}\n$ {shlex.join(step.argv)}\n")
        environment = QProcessEnvironment()
        for key, value in core_env.process_environment().items():
            environment.insert(key, value)
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.MergedChannels)
        process.setProcessEnvironment(environment)
        process.readyReadStandardOutput.connect(self._read)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._error)
        self.process = process
        process.start(step.argv[0], list(step.argv[1:]))

    def _read(self) -> None:
        self._write(bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace"))

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.FailedToStart and not self.cancelled:  # no 'finished' follows
            self._end(
                False,
                f"'{self.plan.steps[self.index].argv[0]}' could not be started: "
                f"{self.process.errorString()}.",
            )

    def _finished(self) -> None:
        exit_code, exit_status = self.process.exitCode(), self.process.exitStatus()
        if self.cancelled:
            return  # _poll_cancel ends it once every process of the step is gone
        if exit_status == QProcess.NormalExit and exit_code == 0:
            self.index += 1
            if self.index < len(self.plan.steps):
                self.process.deleteLater()
                self._run_step()
            else:
                save_core_python(str(self.plan.python))
                self._end(
                    True, f"The core environment is ready; its interpreter {self.plan.python} is saved."
                )
        else:
            how = f"exit code {exit_code}" if exit_status == QProcess.NormalExit else "it crashed"
            self._end(
                False,
                f"'{self.plan.steps[self.index].title}' failed ({how}); the log above says why. Fix the "
                "cause (often: no internet connection, or too little disk space: about 7 GB are needed) "
                "and try again.",
            )

    def _end(self, ok: bool, message: str) -> None:
        self.process.deleteLater()
        self.process = None
        folder = self.plan.folder
        if not ok and folder.exists():
            message += (
                f" The half-made environment {folder} was removed."
                if core_env.remove_folder(folder)
                else f" Part of the half-made environment {folder} could not be removed: delete it by hand."
            )
        self._write(f"\n{message}\n")
        QgsMessageLog.logMessage(message, "Soil Carbon", Qgis.Info if ok else Qgis.Warning)
        self.done.emit(ok, message)

    def _write(self, text: str) -> None:
        self.log += text
        self.output.emit(text)


_builder: EnvironmentBuilder | None = None


def environment_builder() -> EnvironmentBuilder:
    """The one builder of this QGIS session."""
    global _builder
    if _builder is None:
        _builder = EnvironmentBuilder()
    return _builder


class SoilCarbonOptionsPage(QgsOptionsPageWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.interpreter = QgsFileWidget()
        self.interpreter.setStorageMode(QgsFileWidget.GetFile)
        self.interpreter.setFilePath(saved_core_python())
        detected = detected_core_python()
        self.interpreter.lineEdit().setPlaceholderText(detected or "path to the core environment's python")
        self.origin = QLabel()
        self.status = QLabel()
        self.status.setWordWrap(True)
        check = QPushButton("Check the core environment")
        check.clicked.connect(self.check)

        form = QFormLayout()
        form.addRow("Core Python interpreter", self.interpreter)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.origin)
        layout.addWidget(check)
        layout.addWidget(self.status)
        layout.addWidget(self._creation_box())
        self.show_origin()

    def _creation_box(self) -> QGroupBox:
        box = QGroupBox("Create the core environment")
        intro = QLabel(
            "For a plugin installed from a zip: downloads PyTorch and the rest of the model stack (about "
            "6 GB, several minutes) into a new Python environment, then uses it. Needs Python 3.11 or later."
        )
        intro.setWordWrap(True)
        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.GetDirectory)
        self.folder.setFilePath(str(core_env.default_folder()))
        self.create_button = QPushButton("Create the core environment")
        self.create_button.clicked.connect(self.create)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(10000)
        self.log.setPlaceholderText("The creation's log appears here.")

        self.builder = environment_builder()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.builder.cancel)
        self.builder.output.connect(self._append)
        self.builder.step_started.connect(self._show_step)
        self.builder.done.connect(self._creation_done)
        self.log.setPlainText(self.builder.log)
        self._set_running(self.builder.running())
        if self.builder.running():  # started from a page that was closed since
            steps = self.builder.plan.steps
            self._show_step(self.builder.index, len(steps), steps[self.builder.index].title)

        buttons = QHBoxLayout()
        buttons.addWidget(self.create_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch()
        form = QFormLayout()
        form.addRow("Folder", self.folder)
        layout = QVBoxLayout(box)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.log)
        return box

    def show_origin(self) -> None:
        python, origin = core_python()
        self.origin.setText(
            f"In use: {python} (from {origin}).\nThe {ENV_VARIABLE} environment variable overrides this page."
            if python
            else "No core environment found: create one below or with 'make setup', or give its "
            "interpreter here."
        )

    def check(self) -> str:
        """Run the worker's environment task with the path as typed; show and return the outcome."""
        self.apply()
        try:
            info = run_task("environment", {"probe_device": True}, QgsProcessingFeedback())
            text = describe_environment(info)
        except WorkerError as err:
            text = f"Not working: {err.message}"
        self.status.setText(text)
        return text

    def apply(self) -> None:
        save_core_python(self.interpreter.filePath())
        self.show_origin()

    def create(self) -> None:
        """Plan the environment in the chosen folder and start it; a problem found first goes to the log."""
        folder = Path(self.folder.filePath().strip() or core_env.default_folder()).expanduser().absolute()
        try:
            core_env.check_folder(folder)
            requirements = core_env.find_requirements(PLUGIN_DIR)
            python, _ = core_env.find_base_python()
        except core_env.CoreEnvError as err:
            self.log.setPlainText(f"Cannot create the core environment: {err}")
            return
        self.start(core_env.plan(folder, python, requirements))

    def start(self, plan: core_env.Plan) -> None:
        """Run ``plan``'s steps, showing their output live."""
        self.log.clear()
        self._set_running(True)
        self.builder.start(plan)

    def _set_running(self, running: bool) -> None:
        self.create_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.folder.setEnabled(not running)

    def _append(self, text: str) -> None:
        self.log.moveCursor(QTextCursor.End)
        self.log.insertPlainText(text)
        self.log.ensureCursorVisible()

    def _show_step(self, index: int, count: int, title: str) -> None:
        self.progress.show()
        self.progress.setRange(0, count)
        self.progress.setValue(index)
        self.progress.setFormat(f"Step {index + 1} of {count}: {title}")

    def _creation_done(self, ok: bool, message: str) -> None:
        self._set_running(False)
        self.progress.setFormat("Done" if ok else message.split(".")[0])
        if ok:
            self.progress.setValue(self.progress.maximum())
            self.interpreter.setFilePath(str(self.builder.plan.python))
            self.check()


class SoilCarbonOptionsFactory(QgsOptionsWidgetFactory):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Soil Carbon")

    def icon(self) -> QIcon:
        return QIcon(str(PLUGIN_DIR / "icon.svg"))

    def createWidget(self, parent=None) -> SoilCarbonOptionsPage:
        return SoilCarbonOptionsPage(parent)
