"""Sample covariates at points: every band of every raster at each point, with a validity flag."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant

from .base import JOIN_FIELD, SoilCarbonAlgorithm

METHODS = ("nearest", "bilinear")


class SampleCovariatesAlgorithm(SoilCarbonAlgorithm):
    INPUT = "INPUT"
    RASTERS = "RASTERS"
    METHOD = "METHOD"
    OUTPUT = "OUTPUT"
    VALID_COUNT = "VALID_COUNT"

    def name(self) -> str:
        return "samplecovariates"

    def displayName(self) -> str:
        return self.tr("Sample covariates at points")

    def shortHelpString(self) -> str:
        return self.tr(
            "Samples every band of every raster at each point (the covariate table a soil model "
            "trains on) and adds one field per band, a 'valid' flag (1 when every band has a value) "
            "and a 'problem' note naming the rasters where the point is on nodata or outside.\n\n"
            "Each raster is read in its own CRS (the points are transformed, never the raster); "
            "values keep the raster's units (e.g. metres for elevation). Nodata is NULL, never 0. "
            "GeoTIFF, SAGA .sdat and any GDAL raster work.\n\n"
            "Method: nearest (the cell containing the point) or bilinear (the four cell centres "
            "around it; nodata neighbours drop out).\n\n"
            "Use 'Selected features only' on the input to sample a selection.\n\n"
            "Example (command line):\n"
            "qgis_process run soilcarbon:samplecovariates -- INPUT=samples.gpkg "
            "RASTERS=dem.tif RASTERS=ndvi.tif METHOD=1 OUTPUT=covariates.gpkg"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.INPUT, self.tr("Sample points"), [QgsProcessing.TypeVectorPoint]
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.RASTERS, self.tr("Rasters to sample"), QgsProcessing.TypeRaster
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.METHOD,
                self.tr("Interpolation"),
                [self.tr("Nearest"), self.tr("Bilinear")],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, self.tr("Sampled points"), QgsProcessing.TypeVectorPoint
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.VALID_COUNT, self.tr("Points valid on every raster")))

    def checkParameterValues(self, parameters, context):
        # Runs before Processing's generic check, whose message would only say "Incorrect parameter value".
        raw = parameters.get(self.RASTERS) or []
        for value in raw if isinstance(raw, list) else [raw]:
            if isinstance(value, str) and QgsProcessingUtils.mapLayerFromString(value, context) is None:
                return False, self.tr(
                    "The raster '{0}' does not exist or cannot be read as a raster."
                ).format(value)
        return super().checkParameterValues(parameters, context)

    def raster_files(self, parameters: dict[str, Any], context) -> list[dict[str, str]]:
        """File path and field name of each chosen raster, with a clear error for unusable ones."""
        layers = self.parameterAsLayerList(parameters, self.RASTERS, context)
        if not layers:
            raise QgsProcessingException(self.tr("Choose at least one raster to sample."))
        rasters = []
        for layer in layers:
            if not isinstance(layer, QgsRasterLayer) or layer.providerType() != "gdal":
                raise QgsProcessingException(
                    self.tr("'{0}' is not a file raster; save it as GeoTIFF first.").format(layer.name())
                )
            path = (
                QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or layer.source()
            )
            if not os.path.exists(path):
                raise QgsProcessingException(
                    self.tr("The raster '{0}' ({1}) does not exist.").format(layer.name(), path)
                )
            rasters.append({"path": path, "name": layer.name()})
        return rasters

    def processAlgorithm(self, parameters, context, feedback):
        source = self.parameterAsSource(parameters, self.INPUT, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.INPUT))
        rasters = self.raster_files(parameters, context)
        method = METHODS[self.parameterAsEnum(parameters, self.METHOD, context)]
        label = source.sourceName()

        points = self.export_points(source, context, feedback, label)
        sampled_path = os.path.join(os.path.dirname(points), "sampled.gpkg")
        source_names = [field.name() for field in source.fields()]
        summary = self.run_worker(
            "sample_covariates",
            {
                "points": {"path": points, "layer": "points"},
                "rasters": rasters,
                "method": method,
                "output": sampled_path,
                "reserved_names": source_names,
            },
            feedback,
            outputs=[sampled_path],
            progress_range=(5.0, 90.0),
        )

        new_fields = QgsFields()
        for name in summary["fields"]:
            new_fields.append(QgsField(name, QVariant.Double))
        new_fields.append(QgsField(summary["valid_field"], QVariant.Int))
        new_fields.append(QgsField(summary["problem_field"], QVariant.String))
        sampled = QgsVectorLayer(f"{summary['output']}|layername={summary['layer']}", "sampled", "ogr")
        if not sampled.isValid():
            raise QgsProcessingException(
                self.tr("The worker's output cannot be read: {0}").format(sampled_path)
            )
        names = new_fields.names()
        values = {feature[JOIN_FIELD]: [feature[name] for name in names] for feature in sampled.getFeatures()}
        del sampled

        fields = QgsFields(source.fields())
        for field in new_fields:
            fields.append(field)
        sink, dest_id = self.parameterAsSink(
            parameters, self.OUTPUT, context, fields, source.wkbType(), source.sourceCrs()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        total = max(len(values), 1)
        for index, feature in enumerate(source.getFeatures()):
            if feedback.isCanceled():
                del sink
                self.remove_output(dest_id)
                raise QgsProcessingException(self.tr("Cancelled; no output was written."))
            out = QgsFeature(fields)
            out.setGeometry(feature.geometry())
            out.setAttributes(feature.attributes() + values[feature.id()])
            sink.addFeature(out, QgsFeatureSink.FastInsert)
            feedback.setProgress(90.0 + 10.0 * index / total)
        return {self.OUTPUT: dest_id, self.VALID_COUNT: summary["n_valid"]}
