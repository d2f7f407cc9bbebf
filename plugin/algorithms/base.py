"""The typed base of every Soil carbon algorithm: worker calls, error mapping, point export, raster
files, and joining the worker's fields back to the source features."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
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

    #: The sample points (input) and the points with the worker's fields (output), for algorithms with them.
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    #: Raster parameters (single or multiple layers) whose file paths :meth:`checkParameterValues` checks.
    RASTER_PARAMETERS: tuple[str, ...] = ()

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

    def add_advanced(self, *parameters: QgsProcessingParameterDefinition) -> None:
        """Add ``parameters`` under the dialog's 'Advanced parameters'."""
        self.add_parameters(parameters, advanced=True)

    def add_parameters(self, parameters, advanced: bool = False) -> None:
        for parameter in parameters:
            if advanced:
                parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)

    def add_points_input(self) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.INPUT, self.tr("Sample points"), [QgsProcessing.TypeVectorPoint]
            )
        )

    def add_points_output(self, description: str) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSink(self.OUTPUT, description, QgsProcessing.TypeVectorPoint)
        )

    def points_source(self, parameters: dict[str, Any], context: QgsProcessingContext):
        """The INPUT points (only the selected ones with 'Selected features only')."""
        source = self.parameterAsSource(parameters, self.INPUT, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.INPUT))
        return source

    def checkParameterValues(self, parameters, context):
        # Runs before Processing's generic check, whose message would only say "Incorrect parameter value".
        for name in self.RASTER_PARAMETERS:
            raw = parameters.get(name) or []
            for value in raw if isinstance(raw, list) else [raw]:
                if isinstance(value, str) and QgsProcessingUtils.mapLayerFromString(value, context) is None:
                    return False, self.tr(
                        "The raster '{0}' does not exist or cannot be read as a raster."
                    ).format(value)
        return super().checkParameterValues(parameters, context)

    def raster_path(self, layer: QgsMapLayer) -> str:
        """The file behind a raster layer (the worker reads files), or an error saying how to get one."""
        if not isinstance(layer, QgsRasterLayer) or layer.providerType() != "gdal":
            raise QgsProcessingException(
                self.tr("'{0}' is not a file raster; save it as GeoTIFF first.").format(layer.name())
            )
        path = QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or layer.source()
        if not os.path.exists(path):
            raise QgsProcessingException(
                self.tr("The raster '{0}' ({1}) does not exist.").format(layer.name(), path)
            )
        return path

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
        fields: list[str] | tuple[str, ...] = (),
    ) -> str:
        """Write the source's points to a temporary GeoPackage: geometry, a join key and ``fields``
        (the attributes the worker reads, e.g. a target, covariates or a date; by name)."""
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
        names = list(dict.fromkeys(fields))
        copied = [source.fields().lookupField(name) for name in names]
        if any(index < 0 for index in copied):
            missing = [name for name, index in zip(names, copied, strict=True) if index < 0]
            raise QgsProcessingException(
                self.tr("The points layer '{0}' has no field(s) {1}.").format(layer_label, ", ".join(missing))
            )
        out_fields = QgsFields()
        out_fields.append(QgsField(JOIN_FIELD, QVariant.LongLong))
        for index in copied:
            out_fields.append(source.fields().at(index))
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName = "GPKG"
        options.layerName = "points"
        writer = QgsVectorFileWriter.create(
            path, out_fields, source.wkbType(), source.sourceCrs(), context.transformContext(), options
        )
        if writer.hasError() != QgsVectorFileWriter.NoError:
            raise QgsProcessingException(
                self.tr("Cannot write temporary points: {0}").format(writer.errorMessage())
            )
        total = max(source.featureCount(), 1)
        for index, feature in enumerate(source.getFeatures()):
            if feedback.isCanceled():
                break
            out = QgsFeature(out_fields)
            out.setGeometry(feature.geometry())
            out.setAttributes([feature.id(), *(feature.attribute(index) for index in copied)])
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

    def write_joined(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        source: QgsProcessingFeatureSource,
        worker_outputs: dict[str, Any],
        extra_fields: tuple[QgsField, ...] = (),
        *,
        output: str | None = None,
        geometry: bool = True,
        progress_range: tuple[float, float] = (90.0, 100.0),
    ) -> str:
        """Write OUTPUT: every source feature with its attributes, then the worker's fields.

        The worker's result names its ``output`` file and ``layer``, its numeric ``fields`` (written as
        doubles), its ``valid_field`` (0/1; optional) and, in ``extra_fields``, any more. Their values
        are matched to the source features on :data:`JOIN_FIELD` (the feature id that
        :meth:`export_points` wrote). ``output`` names another sink than OUTPUT; ``geometry`` False
        writes a table without geometry. Progress over ``progress_range``. Returns the sink's
        destination id.
        """
        new_fields = QgsFields()
        for name in worker_outputs["fields"]:
            new_fields.append(QgsField(name, QVariant.Double))
        if worker_outputs.get("valid_field"):
            new_fields.append(QgsField(worker_outputs["valid_field"], QVariant.Int))
        for field in extra_fields:
            new_fields.append(field)
        clashes = [name for name in new_fields.names() if source.fields().lookupField(name) >= 0]
        if clashes:
            raise QgsProcessingException(
                self.tr(
                    "The points layer already has the field(s) {0}. Rename or delete them (or run on the "
                    "original points rather than on an earlier output)."
                ).format(", ".join(clashes))
            )
        joined = QgsVectorLayer(
            f"{worker_outputs['output']}|layername={worker_outputs['layer']}", "worker output", "ogr"
        )
        if not joined.isValid():
            raise QgsProcessingException(
                self.tr("The worker's output cannot be read: {0}").format(worker_outputs["output"])
            )
        names = new_fields.names()
        values = {feature[JOIN_FIELD]: [feature[name] for name in names] for feature in joined.getFeatures()}
        del joined  # release the GeoPackage

        fields = QgsFields(source.fields())
        for field in new_fields:
            fields.append(field)
        output = output or self.OUTPUT
        wkb_type = source.wkbType() if geometry else QgsWkbTypes.NoGeometry
        sink, dest_id = self.parameterAsSink(
            parameters, output, context, fields, wkb_type, source.sourceCrs()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, output))
        start, end = progress_range
        total = max(len(values), 1)
        for index, feature in enumerate(source.getFeatures()):
            if feedback.isCanceled():
                del sink
                self.remove_output(dest_id)
                raise QgsProcessingException(self.tr("Cancelled; no output was written."))
            out = QgsFeature(fields)
            if geometry:
                out.setGeometry(feature.geometry())
            out.setAttributes(feature.attributes() + values[feature.id()])
            sink.addFeature(out, QgsFeatureSink.FastInsert)
            feedback.setProgress(start + (end - start) * index / total)
        return dest_id
