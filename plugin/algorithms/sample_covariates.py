"""Sample covariates at points: every band of every raster at each point, with a validity flag."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsField,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterMultipleLayers,
)
from qgis.PyQt.QtCore import QVariant

from .base import SoilCarbonAlgorithm

METHODS = ("nearest", "bilinear")


class SampleCovariatesAlgorithm(SoilCarbonAlgorithm):
    RASTERS = "RASTERS"
    METHOD = "METHOD"
    VALID_COUNT = "VALID_COUNT"
    RASTER_PARAMETERS = (RASTERS,)

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
        self.add_points_input()
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
        self.add_points_output(self.tr("Sampled points"))
        self.addOutput(QgsProcessingOutputNumber(self.VALID_COUNT, self.tr("Points valid on every raster")))

    def raster_files(self, parameters: dict[str, Any], context) -> list[dict[str, str]]:
        """File path and field name of each chosen raster, with a clear error for unusable ones."""
        layers = self.parameterAsLayerList(parameters, self.RASTERS, context)
        if not layers:
            raise QgsProcessingException(self.tr("Choose at least one raster to sample."))
        return [{"path": self.raster_path(layer), "name": layer.name()} for layer in layers]

    def processAlgorithm(self, parameters, context, feedback):
        source = self.points_source(parameters, context)
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

        problem = QgsField(summary["problem_field"], QVariant.String)
        dest_id = self.write_joined(parameters, context, feedback, source, summary, (problem,))
        return {self.OUTPUT: dest_id, self.VALID_COUNT: summary["n_valid"]}
