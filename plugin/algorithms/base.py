"""The typed base of every Soil carbon algorithm: worker calls, error mapping, point export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsVectorFileWriter,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QCoreApplication, QVariant
from qgis.PyQt.QtGui import QIcon

from ..outputs import remove_with_sidecars
from ..settings import PLUGIN_DIR
from ..worker_client import WorkerError, run_task

#: Field the exported points carry so worker results join back to the source features.
JOIN_FIELD = "sc_fid"


class SoilCarbonAlgorithm(QgsProcessingAlgorithm):
    """Subclasses define ``name``, ``displayName``, ``shortHelpString``, parameters and processing."""

    def createInstance(self) -> SoilCarbonAlgorithm:
        return type(self)()

    def group(self) -> str:
        return self.tr("Soil carbon")

    def groupId(self) -> str:
        return "soilcarbon"

    def icon(self) -> QIcon:
        return QIcon(str(PLUGIN_DIR / "icon.svg"))

    def tr(self, text: str) -> str:
        return QCoreApplication.translate(type(self).__name__, text)

    def run_worker(
        self,
        task: str,
        params: dict[str, Any],
        feedback: QgsProcessingFeedback,
        *,
        outputs: list[str] = (),
        progress_range: tuple[float, float] = (0.0, 100.0),
    ) -> dict[str, Any]:
        """Run a core task; any failure becomes a ``QgsProcessingException`` with the worker's message."""
        try:
            return run_task(task, params, feedback, outputs=outputs, progress_range=progress_range)
        except WorkerError as err:
            raise QgsProcessingException(err.message) from err

    def export_points(
        self,
        source: QgsProcessingFeatureSource,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        layer_label: str,
    ) -> str:
        """Write the source's points (geometry and a join key only) to a temporary GeoPackage."""
        if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.PointGeometry:
            raise QgsProcessingException(
                self.tr("'{0}' is not a point layer; use Vector › Geometry › Centroids first.").format(
                    layer_label
                )
            )
        if source.featureCount() == 0:
            raise QgsProcessingException(
                self.tr(
                    "The points layer '{0}' has no features (or no selected features when 'selected "
                    "features only' is on). Choose a layer with sample points."
                ).format(layer_label)
            )
        if not source.sourceCrs().isValid():
            raise QgsProcessingException(
                self.tr("The points layer '{0}' has no CRS. Set it in Layer Properties › Source.").format(
                    layer_label
                )
            )
        path = QgsProcessingUtils.generateTempFilename("points.gpkg")
        fields = QgsFields()
        fields.append(QgsField(JOIN_FIELD, QVariant.LongLong))
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName = "GPKG"
        options.layerName = "points"
        writer = QgsVectorFileWriter.create(
            path, fields, source.wkbType(), source.sourceCrs(), context.transformContext(), options
        )
        if writer.hasError() != QgsVectorFileWriter.NoError:
            raise QgsProcessingException(
                self.tr("Cannot write temporary points: {0}").format(writer.errorMessage())
            )
        total = max(source.featureCount(), 1)
        for index, feature in enumerate(source.getFeatures()):
            if feedback.isCanceled():
                break
            out = QgsFeature(fields)
            out.setGeometry(feature.geometry())
            out.setAttribute(0, feature.id())
            writer.addFeature(out, QgsFeatureSink.FastInsert)
            if index % 1000 == 0:
                feedback.setProgress(5.0 * index / total)
        del writer  # flush and close the GeoPackage
        if feedback.isCanceled():
            raise QgsProcessingException(self.tr("Cancelled; no output was written."))
        return path

    @staticmethod
    def remove_output(dest_id: str) -> None:
        """Delete a file output (with its sidecars) that a cancelled run had started."""
        remove_with_sidecars(Path(dest_id.split("|")[0]))
