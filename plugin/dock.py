"""The analyst's dock: pick points, rasters and a model, and predict without leaving the map.

The dock runs the plugin's Processing algorithms (the same ones the Toolbox, models and ``qgis_process``
run) in QGIS's task manager, so the interface stays responsive: :func:`dock_parameters` turns what is
chosen (a :class:`DockState`) into an algorithm id and its parameters; :class:`AlgorithmRun` runs them
in a ``QgsProcessingAlgRunnerTask``; :func:`add_results` loads the outputs, styled, into the group
"Soil carbon results" on the main thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsMapLayerProxyModel,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingUtils,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
)
from qgis.gui import QgsCollapsibleGroupBox, QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QCoreApplication, Qt, pyqtSlot
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .algorithms.inputs import DEVICES, ModelInputsAlgorithm, field_name
from .algorithms.predict_map import PredictMapAlgorithm
from .model_manifest import ManifestError, ModelSummary, model_summary

RESULTS_GROUP = "Soil carbon results"
PREDICT_POINTS = "points"
PREDICT_MAP = "map"
#: What the dock runs: key -> (label, algorithm id).
ACTIONS = {
    PREDICT_POINTS: ("Predict at points", "soilcarbon:predictpoints"),
    PREDICT_MAP: ("Predict map over a template raster's grid", "soilcarbon:predictmap"),
}
ACTIONS_BY_ALGORITHM = {algorithm: key for key, (_label, algorithm) in ACTIONS.items()}
ERROR_STYLE = "color: #b00020;"


def tr(text: str) -> str:
    return QCoreApplication.translate("SoilCarbonDock", text)


@dataclass(frozen=True)
class DockState:
    """What the dock's widgets say; layers by id."""

    action: str = PREDICT_POINTS
    model: str = ""
    points: str = ""
    selected_only: bool = False
    rasters: tuple[str, ...] = ()
    s2: str = ""
    s1: str = ""
    dem: str = ""
    template: str = ""
    device: str = "auto"


def missing_input(state: DockState) -> str | None:
    """What must still be chosen before the state can run, or None."""
    if not state.model:
        return tr("Choose a model file.")
    if state.action == PREDICT_POINTS and not state.points:
        return tr("Choose the point layer.")
    if state.action == PREDICT_MAP and not state.template:
        return tr("Choose the template raster whose grid is mapped.")
    return None


def dock_parameters(state: DockState) -> tuple[str, dict[str, Any]]:
    """The algorithm id and the Processing parameters of ``state`` (outputs: temporary files)."""
    inputs = ModelInputsAlgorithm
    parameters: dict[str, Any] = {
        inputs.MODEL: state.model,
        inputs.RASTERS: list(state.rasters),
        inputs.DEVICE: DEVICES.index(state.device),
        inputs.OUTPUT: QgsProcessing.TEMPORARY_OUTPUT,
    }
    if state.s2:
        parameters[inputs.S2] = [state.s2]
    if state.s1:
        parameters[inputs.S1] = [state.s1]
    if state.dem:
        parameters[inputs.DEM] = state.dem
    if state.action == PREDICT_POINTS:
        parameters[inputs.INPUT] = (
            QgsProcessingFeatureSourceDefinition(state.points, selectedFeaturesOnly=True)
            if state.selected_only
            else state.points
        )
    else:
        parameters[PredictMapAlgorithm.TEMPLATE] = state.template
    return ACTIONS[state.action][1], parameters


def error_text(messages: list[str]) -> str:
    """The errors for the dock: the messages, a traceback reduced to its last line."""
    lines = []
    for message in messages:
        if "Traceback (most recent call last)" in message:
            message = [line for line in message.splitlines() if line.strip()][-1]
        lines.append(message.strip())
    return "\n".join(line for line in lines if line)


class RecordingFeedback(QgsProcessingFeedback):
    """Keeps the errors the algorithm reports (from the task's thread: no widget is touched)."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def reportError(self, error: str, fatalError: bool = False) -> None:
        self.errors.append(error)
        super().reportError(error, fatalError)


#: Runs in progress, kept until their task ends: the task uses their context and feedback even when
#: the dock that started them is gone.
_RUNS: set[AlgorithmRun] = set()


class AlgorithmRun:
    """One algorithm run in the task manager; ``on_done(run, successful, results)`` on the main thread."""

    def __init__(
        self,
        algorithm: QgsProcessingAlgorithm,
        parameters: dict[str, Any],
        project: QgsProject,
        on_done: Callable[[AlgorithmRun, bool, dict], None] | None,
    ) -> None:
        self.algorithm = algorithm
        self.context = QgsProcessingContext()
        self.context.setProject(project)
        self.feedback = RecordingFeedback()
        self.parameters = with_destinations(algorithm, parameters, project)
        self.on_done = on_done
        self.task: QgsProcessingAlgRunnerTask | None = None

    def check(self) -> str | None:
        """Processing's check of the parameters (before anything runs): the problem, or None."""
        ok, message = self.algorithm.checkParameterValues(self.parameters, self.context)
        return None if ok else message

    def start(self) -> None:
        self.task = QgsProcessingAlgRunnerTask(self.algorithm, self.parameters, self.context, self.feedback)
        self.task.executed.connect(self._executed)
        _RUNS.add(self)
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self) -> None:
        self.feedback.cancel()

    def _executed(self, successful: bool, results: dict) -> None:
        _RUNS.discard(self)
        self.task = None  # the task manager deletes it
        if self.on_done is not None:
            self.on_done(self, successful and not self.feedback.isCanceled(), results)


def with_destinations(
    algorithm: QgsProcessingAlgorithm, parameters: dict[str, Any], project: QgsProject
) -> dict[str, Any]:
    """``parameters`` with each output to be loaded into ``project`` on completion (which makes the
    algorithm register its styling post-processors)."""
    parameters = dict(parameters)
    for definition in algorithm.destinationParameterDefinitions():
        value = parameters.get(definition.name())
        if isinstance(value, str):
            output = QgsProcessingOutputLayerDefinition(value, project)
            output.destinationName = definition.description()
            parameters[definition.name()] = output
    return parameters


def results_group(project: QgsProject):
    root = project.layerTreeRoot()
    return root.findGroup(RESULTS_GROUP) or root.insertGroup(0, RESULTS_GROUP)


def add_results(run: AlgorithmRun, project: QgsProject) -> list[str]:
    """Load the run's outputs into the group "Soil carbon results", styled by the algorithm's
    post-processors (layers they add join the group too). Main thread only. Returns the layer names."""
    context, feedback = run.context, run.feedback
    root = project.layerTreeRoot()
    group = results_group(project)
    before = set(project.mapLayers())
    loaded = []
    for layer_id, details in context.layersToLoadOnCompletion().items():
        layer = QgsProcessingUtils.mapLayerFromString(layer_id, context, typeHint=details.layerTypeHint)
        if layer is None:
            feedback.reportError(tr("The output '{0}' cannot be loaded.").format(layer_id))
            continue
        details.setOutputLayerName(layer)
        context.temporaryLayerStore().takeMapLayer(layer)
        project.addMapLayer(layer, False)
        group.insertLayer(0, layer)
        processor = details.postProcessor()
        if processor is not None:
            processor.postProcessLayer(layer, context, feedback)
        loaded.append(layer)
    for layer_id in set(project.mapLayers()) - before:
        node = root.findLayer(layer_id)
        if node is not None and node.parent() is root:
            loaded.append(node.layer())
            group.addChildNode(node.clone())
            root.removeChildNode(node)
    return [layer.name() for layer in loaded]


def outcome(action: str, results: dict, names: list[str]) -> str:
    """The status line after a successful run."""
    if action == PREDICT_POINTS:
        done = tr("Predicted {0} point(s)").format(results.get("PREDICTED"))
    else:
        done = tr("Predicted {0} of {1} cells").format(results.get("PREDICTED"), results.get("CELLS"))
    added = ", ".join(f"'{name}'" for name in names)
    return tr("{0}; added {1} to '{2}'.").format(done, added, RESULTS_GROUP)


def raster_file_stem(layer: QgsRasterLayer) -> str:
    path = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source()).get("path")
    return Path(path or layer.source()).stem


class SoilCarbonDock(QgsDockWidget):
    """Predict at points or a map with a soil model, from the project's layers."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(tr("Soil carbon"), parent)
        self.setObjectName("SoilCarbonDock")
        self.project = QgsProject.instance()
        self.summary: ModelSummary | None = None
        self.current_run: AlgorithmRun | None = None
        self.build()
        self.model.fileChanged.connect(self.model_changed)
        self.action.currentIndexChanged.connect(self.action_changed)
        self.points.layerChanged.connect(self.update_run)
        self.template.layerChanged.connect(self.update_run)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.project.layersAdded.connect(self.refresh_rasters)
        self.project.layersRemoved.connect(self.refresh_rasters)
        self.refresh_rasters()
        self.action_changed()
        self.model_changed("")

    # Widgets ---------------------------------------------------------------------------------------

    def build(self) -> None:
        body = QWidget()
        layout = QVBoxLayout(body)
        form = QFormLayout()
        layout.addLayout(form)

        self.model = QgsFileWidget()
        self.model.setFilter(tr("Soil carbon models (*.zip)"))
        form.addRow(tr("Model"), self.model)
        self.manifest = QLabel()
        self.manifest.setWordWrap(True)
        self.manifest.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow(self.manifest)

        self.action = QComboBox()
        for key, (label, _algorithm) in ACTIONS.items():
            self.action.addItem(tr(label), key)
        form.addRow(tr("Run"), self.action)

        self.points = QgsMapLayerComboBox()
        self.points.setFilters(QgsMapLayerProxyModel.PointLayer)
        form.addRow(tr("Points"), self.points)
        self.selected_only = QCheckBox(tr("Selected features only"))
        form.addRow(self.selected_only)

        self.template = self.raster_combo(optional=False)
        form.addRow(tr("Template raster"), self.template)

        self.rasters = QListWidget()
        self.rasters.setMaximumHeight(120)
        self.rasters.setToolTip(
            tr("The model's covariate rasters, named as at training (checked when the model names them).")
        )
        form.addRow(tr("Covariate rasters"), self.rasters)

        chips = QgsCollapsibleGroupBox(tr("Imagery chip rasters (optional)"))
        chips_form = QFormLayout(chips)
        self.s2, self.s1, self.dem = self.raster_combo(), self.raster_combo(), self.raster_combo()
        chips_form.addRow(tr("Sentinel-2"), self.s2)
        chips_form.addRow(tr("Sentinel-1"), self.s1)
        chips_form.addRow(tr("DEM"), self.dem)
        chips.setCollapsed(True)
        layout.addWidget(chips)

        device_form = QFormLayout()
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        device_form.addRow(tr("Device"), self.device)
        layout.addLayout(device_form)

        buttons = QHBoxLayout()
        self.run_button = QPushButton(tr("Run"))
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.status)
        layout.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        self.setWidget(scroll)

    @staticmethod
    def raster_combo(optional: bool = True) -> QgsMapLayerComboBox:
        """The project's rasters; an ``optional`` one starts empty."""
        combo = QgsMapLayerComboBox()
        combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        if optional:
            combo.setAllowEmptyLayer(True)
            combo.setLayer(None)
        return combo

    def refresh_rasters(self, *_changed) -> None:
        """The project's raster layers in the covariate list, keeping what was checked."""
        checked = set(self.checked_rasters())
        self.rasters.clear()
        for layer in self.project.mapLayers().values():
            if isinstance(layer, QgsRasterLayer):
                item = QListWidgetItem(layer.name())
                item.setData(Qt.UserRole, layer.id())
                item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                item.setCheckState(Qt.Checked if layer.id() in checked else Qt.Unchecked)
                self.rasters.addItem(item)
        self.check_model_rasters()

    def checked_rasters(self) -> list[str]:
        items = (self.rasters.item(row) for row in range(self.rasters.count()))
        return [item.data(Qt.UserRole) for item in items if item.checkState() == Qt.Checked]

    def check_model_rasters(self) -> None:
        """Check the rasters the model was trained with (by layer name or file name)."""
        if self.summary is None:
            return
        wanted = {field_name(name) for name in self.summary.raster_names}
        for row in range(self.rasters.count()):
            item = self.rasters.item(row)
            layer = self.project.mapLayer(item.data(Qt.UserRole))
            if layer is not None and wanted & {field_name(layer.name()), field_name(raster_file_stem(layer))}:
                item.setCheckState(Qt.Checked)

    # State -----------------------------------------------------------------------------------------

    def state(self) -> DockState:
        def layer_id(combo: QgsMapLayerComboBox) -> str:
            layer = combo.currentLayer()
            return layer.id() if layer is not None else ""

        return DockState(
            action=self.action.currentData(),
            model=self.model.filePath().strip(),
            points=layer_id(self.points),
            selected_only=self.selected_only.isChecked(),
            rasters=tuple(self.checked_rasters()),
            s2=layer_id(self.s2),
            s1=layer_id(self.s1),
            dem=layer_id(self.dem),
            template=layer_id(self.template),
            device=self.device.currentText(),
        )

    def model_changed(self, path: str) -> None:
        """Show the model's manifest (or why it cannot be used) below the file."""
        self.summary = None
        path = path.strip()
        if not path:
            self.manifest.setStyleSheet("")
            self.manifest.setText(tr("Choose a model (.zip from 'Train SOC model')."))
        else:
            try:
                summary = model_summary(path)
            except ManifestError as err:
                self.show_manifest_error(str(err))
            else:
                if summary.kind != "sptgnn":
                    self.show_manifest_error(
                        tr("'{0}' is a {1} model, not an SOC model.").format(
                            path, summary.kind or "different"
                        )
                    )
                else:
                    self.summary = summary
                    self.manifest.setStyleSheet("")
                    self.manifest.setText(summary.describe())
                    self.check_model_rasters()
        self.update_run()

    def show_manifest_error(self, text: str) -> None:
        self.manifest.setStyleSheet(ERROR_STYLE)
        self.manifest.setText(text)

    def action_changed(self, *_index) -> None:
        points = self.action.currentData() == PREDICT_POINTS
        self.points.setEnabled(points)
        self.selected_only.setEnabled(points)
        self.template.setEnabled(not points)
        self.update_run()

    def update_run(self, *_changed) -> None:
        """Run is possible with a readable SOC model and the inputs the chosen action needs."""
        problem = missing_input(self.state()) if self.summary is not None else self.manifest.text()
        self.run_button.setEnabled(self.current_run is None and problem is None)
        self.run_button.setToolTip(problem or "")

    # Running ---------------------------------------------------------------------------------------

    def run(self) -> None:
        state = self.state()
        algorithm_id, parameters = dock_parameters(state)
        algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
        if algorithm is None:
            self.show_status(
                tr("The algorithm {0} is not available: enable the Soil carbon plugin.").format(algorithm_id),
                error=True,
            )
            return
        run = AlgorithmRun(algorithm, parameters, self.project, self.finished)
        problem = run.check()
        if problem:
            self.show_status(problem, error=True)
            return
        self.current_run = run
        self.progress.setValue(0)
        run.feedback.progressChanged.connect(self.set_progress)
        self.set_running(True)
        self.show_status(tr("{0}…").format(self.action.currentText()))
        run.start()

    def cancel(self) -> None:
        if self.current_run is not None:
            self.current_run.cancel()
            self.cancel_button.setEnabled(False)
            self.show_status(tr("Cancelling…"))

    @pyqtSlot(float)
    def set_progress(self, percent: float) -> None:
        self.progress.setValue(int(percent))

    def finished(self, run: AlgorithmRun, successful: bool, results: dict) -> None:
        """The run's end, on the main thread: load and style the results, or say what went wrong."""
        self.current_run = None
        self.set_running(False)
        action = ACTIONS_BY_ALGORITHM[run.algorithm.id()]
        if run.feedback.isCanceled():
            self.progress.setValue(0)
            self.show_status(tr("Cancelled; nothing was added."))
        elif not successful:
            self.show_status(
                error_text(run.feedback.errors)
                or tr("{0} failed; see the log.").format(tr(ACTIONS[action][0])),
                error=True,
            )
        else:
            names = add_results(run, self.project)
            self.progress.setValue(100)
            self.show_status(outcome(action, results, names))

    def set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        self.update_run()

    def show_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet(ERROR_STYLE if error else "")
        self.status.setText(text)

    def shutdown(self) -> None:
        """Before the dock goes (plugin unload): cancel a run and stop following the project."""
        if self.current_run is not None:
            self.current_run.on_done = None
            self.current_run.cancel()
            self.current_run = None
        self.project.layersAdded.disconnect(self.refresh_rasters)
        self.project.layersRemoved.disconnect(self.refresh_rasters)
