"""Train an SOC model: a deep ensemble of SpTGNN graph networks on labelled points, with a report."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingUtils,
)

from ..model_manifest import model_summary, read_manifest
from ..report import HtmlReport
from .training_inputs import TrainingInputsAlgorithm


class TrainModelAlgorithm(TrainingInputsAlgorithm):
    OUTPUT_MODEL = "OUTPUT_MODEL"
    SAMPLES = "SAMPLES"

    def name(self) -> str:
        return "trainmodel"

    def displayName(self) -> str:
        return self.tr("Train SOC model")

    def shortHelpString(self) -> str:
        return (
            self.tr(
                "Trains a soil organic carbon model on labelled points: a deep ensemble of SpTGNN networks "
                "on a soil graph whose nodes are the samples, linked by three relations (spatial "
                "neighbours, spectral neighbours in covariate space, elevation neighbours). Every labelled "
                "sample becomes a reference node that predictions attach to. A spatial-block part of the "
                "samples is held out for early stopping and to calibrate the 90 % intervals; the metrics on "
                "it are stored in the model.\n\n"
            )
            + self.inputs_help()
            + self.tr(
                "\n\nOutputs: the model (.zip: weights, the training samples and a manifest with the "
                "target, unit, input names and validation metrics; give it to 'Predict SOC at points' and "
                "'Predict SOC map'), and an HTML report (one file) with the validation metrics (R², RMSE, "
                "MAE in the target's unit, NLL, CRPS, PICP90, ECE, ENCE, each explained), the training "
                "settings, the learning curve and the calibration and interval plots of the validation "
                "samples. For an estimate of the accuracy at new places use 'Evaluate model (spatial "
                "cross-validation)'.\n\n"
                "Example (command line):\n"
                "qgis_process run soilcarbon:trainmodel -- INPUT=samples.gpkg TARGET_FIELD=COSha30 "
                "UNIT=t/ha RASTERS=elevation.tif RASTERS=slope.tif ELEVATION=elevation SLOPE=slope "
                "MEMBERS=5 OUTPUT_MODEL=soc_model.zip OUTPUT_REPORT=soc_model.html"
            )
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_training_inputs()
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_MODEL, self.tr("SOC model"), fileFilter=self.tr("Soil carbon models (*.zip)")
            )
        )
        self.add_report_output(self.tr("Training report"))
        self.addOutput(QgsProcessingOutputNumber(self.SAMPLES, self.tr("Training samples")))
        self.add_metric_outputs()

    def processAlgorithm(self, parameters, context, feedback):
        model = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        if not model.lower().endswith(".zip"):
            raise QgsProcessingException(
                self.tr("The model file '{0}' must end in .zip (e.g. soc_model.zip).").format(model)
            )
        report_path = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        source = self.points_source(parameters, context)
        request = self.training_request(parameters, context, feedback, source)
        plots = QgsProcessingUtils.generateTempFilename("training_plots")
        result = self.run_worker(
            "train",
            {**request, "output": model, "plots": plots},
            feedback,
            outputs=[model],
            progress_range=(5.0, 95.0),
        )
        feedback.pushInfo(
            self.tr("Trained {0} member(s) on {1} samples in {2} s on {3}; relations: {4}.").format(
                result["members"],
                result["samples"],
                result["seconds"],
                result["device"],
                ", ".join(result["relations"]),
            )
        )
        self.log_model(model_summary(model), feedback)
        self.report_or_error(
            lambda: self.write_report(report_path, model, request, result, source.sourceName()), report_path
        )
        metrics = result["validation"]
        return {
            self.OUTPUT_MODEL: model,
            self.OUTPUT_REPORT: report_path,
            self.SAMPLES: result["samples"],
            self.R2: metrics["r2"],
            self.RMSE: metrics["rmse"],
        }

    def write_report(
        self, path: str, model: str, request: dict[str, Any], result: dict[str, Any], points_label: str
    ) -> None:
        """The training report: model, inputs, validation metrics, settings and plots."""
        manifest = read_manifest(model)
        training = manifest["training"]
        unit = result["unit"]
        report = HtmlReport(
            self.tr("SOC model: {0} ({1})").format(result["target"], unit or self.tr("no unit"))
        )
        report.table(
            [
                (self.tr("Model file"), model),
                (self.tr("Target"), result["target"]),
                (self.tr("Unit"), unit),
                (self.tr("Samples"), result["samples"]),
                (self.tr("Left out (no target value)"), training["dropped_without_target"]),
                (
                    self.tr("Fit / validation samples"),
                    [training["fit_samples"], training["validation_samples"]],
                ),
                (self.tr("Ensemble members"), result["members"]),
                (self.tr("Graph relations"), result["relations"]),
                (self.tr("Epochs run"), training["epochs_run"]),
                (
                    self.tr("Best epoch per member (weights kept)"),
                    [epoch + 1 for epoch in training["best_epoch"]],
                ),
                (self.tr("Training time (s)"), result["seconds"]),
                (self.tr("Device"), result["device"]),
                (self.tr("Created"), manifest.get("created")),
            ]
        )
        self.report_inputs(report, request, points_label)
        report.heading(self.tr("Validation metrics"))
        report.paragraph(
            self.tr(
                "On the {0} validation samples (spatial blocks held out of fitting; they stopped training "
                "early and calibrated the intervals, so these metrics are optimistic: cross-validate for "
                "an independent estimate)."
            ).format(training["validation_samples"])
        )
        report.metrics(result["validation"], unit)
        report.heading(self.tr("Training settings"))
        report.table(
            sorted(training["config"].items()),
            (self.tr("Setting"), self.tr("Value")),
        )
        report.heading(self.tr("Plots"))
        captions = {
            "learning_curve": self.tr(
                "Learning curve: training loss and validation NLL per epoch (normalised target); the dots "
                "mark the epoch whose weights each member keeps."
            ),
            "calibration": self.tr(
                "Calibration of the validation samples: observed against expected coverage of the central "
                "intervals; on the diagonal the intervals are calibrated, below it too narrow."
            ),
            "intervals": self.tr(
                "Observed against predicted on the validation samples, with the 90 % intervals; red points "
                "fall outside their interval."
            ),
        }
        for name, caption in captions.items():
            report.image(result["plots"][name], caption)
        report.write(path)
