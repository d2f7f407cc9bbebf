"""Predict an SOC map: every cell of a grid predicted with uncertainty into a multi-band GeoTIFF."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProject,
    QgsRasterLayer,
)

from ..styling import StyleOnLoad, style_output, style_prediction_band
from .inputs import ModelInputsAlgorithm

#: The worker's default window: 512 x 512 cells read and predicted at a time.
DEFAULT_WINDOW_SIZE = 512


class MapOnLoad(StyleOnLoad):
    """Shows the map's mean, and adds the same file again as a layer of its total sd (its own ramp)."""

    def __init__(self, target: str, unit: str) -> None:
        super().__init__(lambda layer: style_prediction_band(layer, "pred_mean", unit), f"{target} mean")
        self.target, self.unit = target, unit

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext, feedback) -> None:
        super().postProcessLayer(layer, context, feedback)
        if layer is None or not layer.isValid():
            return
        sd = QgsRasterLayer(layer.source(), f"{self.target} total sd")
        if sd.isValid():
            style_prediction_band(sd, "pred_sd_total", self.unit)
            (context.project() or QgsProject.instance()).addMapLayer(sd)


class PredictMapAlgorithm(ModelInputsAlgorithm):
    WINDOW_SIZE = "WINDOW_SIZE"
    CELLS = "CELLS"
    PREDICTED = "PREDICTED"
    RASTER_PARAMETERS = (*ModelInputsAlgorithm.RASTER_PARAMETERS, ModelInputsAlgorithm.TEMPLATE)

    def name(self) -> str:
        return "predictmap"

    def displayName(self) -> str:
        return self.tr("Predict SOC map")

    def shortHelpString(self) -> str:
        return self.tr(
            "Predicts the model's target with uncertainty at every cell of a grid and writes a "
            "Cloud-Optimised GeoTIFF with six named bands, in the target's unit: 1 pred_mean, "
            "2 pred_sd_aleatoric, 3 pred_sd_epistemic, 4 pred_sd_total, 5 pred_lower90, 6 pred_upper90 "
            "(the calibrated 90 % interval). Cells where an input raster has no value are nodata "
            "(-9999).\n\n"
            "Grid: a template raster's grid (its extent, cell size and CRS), or an extent with a cell size "
            "(in the units of the CRS: metres for UTM) and optionally a CRS (default: the extent's CRS).\n\n"
            "Every cell is a query node attached to the model's training samples; rasters are read in "
            "windows of 'Window size' cells, so memory stays bounded whatever the size of the map. A run "
            "that is killed keeps its finished windows beside the output and resumes from them when run "
            "again with the same inputs; Cancel removes everything.\n\n"
            "The map is loaded twice: the mean (Viridis) and the total sd (Magma). Every covariate of the "
            "model must be a raster (the names as at training: layer names or 'Raster names').\n\n"
            "Example (command line):\n"
            "qgis_process run soilcarbon:predictmap -- MODEL=soc_model.zip TEMPLATE=elevation.tif "
            "RASTERS=elevation.tif RASTERS=slope.tif OUTPUT=soc_map.tif"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_model_input()
        self.add_grid_inputs(self.tr("Template raster (its grid is mapped)"))
        self.add_raster_inputs()
        self.add_chip_inputs(advanced=True)
        self.add_date_inputs(with_field=False)
        self.add_device_input()
        self.add_advanced(
            QgsProcessingParameterNumber(
                self.WINDOW_SIZE,
                self.tr("Window size (cells on a side read and predicted at a time)"),
                QgsProcessingParameterNumber.Integer,
                defaultValue=DEFAULT_WINDOW_SIZE,
                minValue=16,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT, self.tr("SOC map (mean, sds, 90 % interval)"), defaultValue=None
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.CELLS, self.tr("Cells in the grid")))
        self.addOutput(QgsProcessingOutputNumber(self.PREDICTED, self.tr("Cells predicted")))

    def processAlgorithm(self, parameters, context, feedback):
        model, summary = self.soc_model(parameters, context)
        self.log_model(summary, feedback)
        if summary.fields:
            raise QgsProcessingException(
                self.tr(
                    "The model reads the point field(s) {0}; a map needs every input as a raster. Use "
                    "'Predict SOC at points', or train a model on rasters only."
                ).format(", ".join(summary.fields))
            )
        grid = self.grid(parameters, context)
        rasters, chips = self.model_rasters(parameters, context, model, summary)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        result = self.run_worker(
            "predict",
            {
                "model": model,
                "grid": grid,
                "rasters": rasters,
                "chips": chips,
                "date": self.date(parameters, context),
                "device": self.device(parameters, context),
                "window_size": self.parameterAsInt(parameters, self.WINDOW_SIZE, context),
                "output": output,
            },
            feedback,
            outputs=[output],
        )
        if result.get("resumed_windows"):
            feedback.pushInfo(
                self.tr("Resumed: {0} of {1} windows came from an interrupted run.").format(
                    result["resumed_windows"], result["n_windows"]
                )
            )
        feedback.pushInfo(
            self.tr("Predicted {0} of {1} cells on {2}.").format(
                result["n_predicted"], result["n_cells"], result["device"]
            )
        )
        unit = result["unit"]
        style_output(
            context,
            output,
            lambda layer: style_prediction_band(layer, "pred_mean", unit),
            processor=MapOnLoad(result["target"], unit),
        )
        return {self.OUTPUT: output, self.CELLS: result["n_cells"], self.PREDICTED: result["n_predicted"]}
