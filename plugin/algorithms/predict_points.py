"""Predict SOC at points: the ensemble's mean, aleatoric, epistemic and total sd, and a 90 % interval."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import QgsProcessingOutputNumber, QgsProcessingOutputString

from ..styling import style_output, style_soc_points
from .inputs import ModelInputsAlgorithm


class PredictPointsAlgorithm(ModelInputsAlgorithm):
    PREDICTED = "PREDICTED"
    TARGET = "TARGET"
    UNIT = "UNIT"

    def name(self) -> str:
        return "predictpoints"

    def displayName(self) -> str:
        return self.tr("Predict SOC at points")

    def shortHelpString(self) -> str:
        return self.tr(
            "Predicts the model's target (topsoil organic carbon) with uncertainty at each point: each point "
            "becomes a query node of the model's three-relation soil graph (spatial, spectral, elevation "
            "neighbours among the training samples) and the deep ensemble predicts it.\n\n"
            "Adds, in the target's unit (e.g. t/ha or g/kg, shown in the log and the legend): pred_mean; "
            "pred_sd_aleatoric (noise the model expects in a measurement), pred_sd_epistemic (the "
            "ensemble's disagreement: large far from the training data), pred_sd_total (both); "
            "pred_lower90 and pred_upper90 (the calibrated 90 % interval). Points outside a raster or on "
            "its nodata get NULL. The layer is coloured by the mean and the marker grows with the total "
            "sd.\n\n"
            "Give the rasters the model was trained with, under the same names (a raster's name is its "
            "layer name, or set 'Raster names'), the same imagery chip rasters if it uses chips, and the "
            "date field (or one date) if it was trained with sampling dates. The model's manifest is "
            "written to the log.\n\n"
            "Use 'Selected features only' on the input to predict a selection.\n\n"
            "Example (command line):\n"
            "qgis_process run soilcarbon:predictpoints -- INPUT=samples.gpkg MODEL=soc_model.zip "
            "RASTERS=elevation.tif RASTERS=slope.tif DEM=dem.tif OUTPUT=soc_points.gpkg"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_points_input()
        self.add_model_input()
        self.add_raster_inputs()
        self.add_chip_inputs(advanced=True)
        self.add_date_inputs()
        self.add_method_input()
        self.add_device_input()
        self.add_points_output(self.tr("SOC prediction at points"))
        self.addOutput(QgsProcessingOutputNumber(self.PREDICTED, self.tr("Points predicted")))
        self.addOutput(QgsProcessingOutputString(self.TARGET, self.tr("Target")))
        self.addOutput(QgsProcessingOutputString(self.UNIT, self.tr("Unit")))

    def processAlgorithm(self, parameters, context, feedback):
        source = self.points_source(parameters, context)
        model, summary = self.soc_model(parameters, context)
        self.log_model(summary, feedback)
        rasters, chips = self.model_rasters(parameters, context, model, summary)
        points = self.export_query_points(parameters, context, feedback, source, model, summary)
        predicted_path = os.path.join(os.path.dirname(points["path"]), "predicted.gpkg")
        result = self.run_worker(
            "predict",
            {
                "model": model,
                "points": points,
                "rasters": rasters,
                "chips": chips,
                "method": self.method(parameters, context),
                "date": self.date(parameters, context),
                "device": self.device(parameters, context),
                "output": predicted_path,
            },
            feedback,
            outputs=[predicted_path],
            progress_range=(5.0, 90.0),
        )
        feedback.pushInfo(
            self.tr("Predicted {0} of {1} point(s) on {2}.").format(
                result["n_predicted"], result["n_points"], result["device"]
            )
        )
        if result["n_predicted"] < result["n_points"]:
            feedback.pushWarning(
                self.tr("{0} point(s) are outside a raster or on its nodata: their fields are NULL.").format(
                    result["n_points"] - result["n_predicted"]
                )
            )
        dest_id = self.write_joined(parameters, context, feedback, source, result)
        unit = result["unit"]
        style_output(
            context, dest_id, lambda layer: style_soc_points(layer, unit), f"{result['target']} prediction"
        )
        return {
            self.OUTPUT: dest_id,
            self.PREDICTED: result["n_predicted"],
            self.TARGET: result["target"],
            self.UNIT: unit,
        }
