"""Settings › Options › Soil Carbon: the core interpreter, where it was found, and a live check."""

from __future__ import annotations

from qgis.core import QgsProcessingFeedback
from qgis.gui import QgsFileWidget, QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QFormLayout, QLabel, QPushButton, QVBoxLayout

from .settings import (
    ENV_VARIABLE,
    PLUGIN_DIR,
    core_python,
    detected_core_python,
    save_core_python,
    saved_core_python,
)
from .worker_client import WorkerError, run_task


def describe_environment(info: dict) -> str:
    """A short, human summary of the worker's ``environment`` task result."""
    packages = ", ".join(f"{name} {version or 'missing'}" for name, version in info["packages"].items())
    device = info["device"]
    where = device["name"] + (f" ({device['memory_gib']} GiB)" if "memory_gib" in device else "")
    return (
        f"Working: soilcarbon_core {info['core_version']} on Python {info['python']}\n"
        f"{packages}; GDAL {info['gdal']}\nCompute device: {device['type'].upper()}, {where}"
    )


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
        layout.addStretch()
        self.show_origin()

    def show_origin(self) -> None:
        python, origin = core_python()
        self.origin.setText(
            f"In use: {python} (from {origin}).\nThe {ENV_VARIABLE} environment variable overrides this page."
            if python
            else "No core environment found: create one with 'make setup', or give its interpreter here."
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


class SoilCarbonOptionsFactory(QgsOptionsWidgetFactory):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Soil Carbon")

    def icon(self) -> QIcon:
        return QIcon(str(PLUGIN_DIR / "icon.svg"))

    def createWidget(self, parent=None) -> SoilCarbonOptionsPage:
        return SoilCarbonOptionsPage(parent)
