"""Evaluate an SOC model's inputs by k-fold cross-validation (spatial blocks or random), with a report."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from ..report import HtmlReport
from .training_inputs import TrainingInputsAlgorithm

CV_KINDS = ("spatial", "random")
#: The files the worker's ``evaluate`` writes in its folder.
REPORT_FILES = ("report.json", "report.md", "calibration.png", "intervals.png")


class EvaluateModelAlgorithm(TrainingInputsAlgorithm):
    CV = "CV"
    FOLDS = "FOLDS"
    BLOCK_SIZE = "BLOCK_SIZE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    PICP90 = "PICP90"

    def name(self) -> str:
        return "evaluatemodel"

    def displayName(self) -> str:
        return self.tr("Evaluate model (spatial cross-validation)")

    def shortHelpString(self) -> str:
        return (
            self.tr(
                "Estimates how well an SOC model trained on these inputs predicts at places it has not "
                "seen: k-fold cross-validation, each fold's points predicted by an ensemble trained (and "
                "calibrated) without them, exactly as 'Train SOC model' trains. Spatial: the points are "
                "grouped in square blocks of 'Block size' metres (0: a tenth of the points' extent "
                "diagonal) and whole blocks are held out, so a test point's close neighbours are not in "
                "training (the honest estimate for mapping); random: points are held out one by one "
                "(optimistic where samples are clustered).\n\n"
            )
            + self.inputs_help()
            + self.tr(
                "\n\nOutputs: an HTML report (one file) with the pooled out-of-fold metrics (R², RMSE, MAE "
                "in the target's unit, NLL, CRPS, PICP90, ECE, ENCE, each explained), the settings, and the "
                "calibration and interval plots; and a folder with the worker's raw report (report.json, "
                "report.md, calibration.png, intervals.png; default: a temporary folder). Training runs "
                "once per fold: with 5 folds it takes about 5 times as long as training a model.\n\n"
                "Example (command line):\n"
                "qgis_process run soilcarbon:evaluatemodel -- INPUT=samples.gpkg TARGET_FIELD=COSha30 "
                "UNIT=t/ha RASTERS=elevation.tif RASTERS=slope.tif ELEVATION=elevation CV=0 FOLDS=5 "
                "BLOCK_SIZE=2000 OUTPUT_REPORT=cv.html OUTPUT_FOLDER=cv_report"
            )
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_training_inputs()
        self.addParameter(
            QgsProcessingParameterEnum(
                self.CV,
                self.tr("Cross-validation"),
                [self.tr("Spatial blocks"), self.tr("Random")],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.FOLDS, self.tr("Folds"), QgsProcessingParameterNumber.Integer, defaultValue=5, minValue=2
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.BLOCK_SIZE,
                self.tr("Block size (metres, spatial; 0: automatic)"),
                QgsProcessingParameterNumber.Double,
                defaultValue=0.0,
                minValue=0.0,
            )
        )
        self.add_report_output(self.tr("Cross-validation report"))
        self.addParameter(
            QgsProcessingParameterFolderDestination(
                self.OUTPUT_FOLDER, self.tr("Folder for the raw report files"), optional=True
            )
        )
        self.add_metric_outputs()
        self.addOutput(
            QgsProcessingOutputNumber(self.PICP90, self.tr("PICP90 (share inside 90 % intervals)"))
        )

    def processAlgorithm(self, parameters, context, feedback):
        report_path = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        folder = self.parameterAsFileOutput(parameters, self.OUTPUT_FOLDER, context)
        if not folder:
            folder = self.parameterDefinition(self.OUTPUT_FOLDER).generateTemporaryDestination()
        cv = CV_KINDS[self.parameterAsEnum(parameters, self.CV, context)]
        block_size = self.parameterAsDouble(parameters, self.BLOCK_SIZE, context)
        if block_size and cv == "random":
            feedback.pushWarning(self.tr("Random cross-validation has no blocks: 'Block size' is ignored."))
        source = self.points_source(parameters, context)
        request = self.training_request(parameters, context, feedback, source)
        result = self.run_worker(
            "evaluate",
            {
                **request,
                "cv": cv,
                "folds": self.parameterAsInt(parameters, self.FOLDS, context),
                "block_size_m": block_size or None,
                "output": folder,
            },
            feedback,
            outputs=[os.path.join(folder, name) for name in REPORT_FILES],
            progress_range=(5.0, 95.0),
        )
        report = result  # report.json's content, with "report": the Markdown file
        metrics = report["metrics"]
        feedback.pushInfo(
            self.tr(
                "{0}-fold {1} cross-validation of {2} samples: R² {3:.3g}, RMSE {4:.4g} {5}, PICP90 {6:.3g}."
            ).format(
                report["folds"],
                cv,
                report["samples"],
                metrics["r2"],
                metrics["rmse"],
                report["unit"],
                metrics["picp90"],
            )
        )
        self.report_or_error(
            lambda: self.write_report(report_path, report, request, source.sourceName(), result["report"]),
            report_path,
        )
        return {
            self.OUTPUT_REPORT: report_path,
            self.OUTPUT_FOLDER: folder,
            self.R2: metrics["r2"],
            self.RMSE: metrics["rmse"],
            self.PICP90: metrics["picp90"],
        }

    def write_report(
        self, path: str, report: dict[str, Any], request: dict[str, Any], points_label: str, markdown: str
    ) -> None:
        """The HTML report from the worker's report.json and its plots."""
        unit = report["unit"]
        html = HtmlReport(
            self.tr("Cross-validation: {0} ({1})").format(report["target"], unit or self.tr("no unit"))
        )
        block = report["block_size_m"]
        html.table(
            [
                (self.tr("Cross-validation"), f"{report['folds']}-fold {report['cv']}"),
                (self.tr("Block size (m)"), block if block else self.tr("none (random folds)")),
                (self.tr("Samples"), report["samples"]),
                (self.tr("Ensemble members"), report["members"]),
                (self.tr("Training time per fold (s)"), report["train_seconds"]),
                (self.tr("Prediction time per fold (s)"), report["predict_seconds"]),
                (self.tr("Raw report"), markdown),
            ]
        )
        self.report_inputs(html, request, points_label)
        html.heading(self.tr("Out-of-fold metrics"))
        html.paragraph(
            self.tr(
                "Every sample predicted once, by the ensemble of the fold that held it out (not used for "
                "fitting, early stopping or calibrating the intervals); the metrics pool all folds."
            )
        )
        html.metrics(report["metrics"], unit)
        html.heading(self.tr("Training settings"))
        html.paragraph(self.tr("As given; the others have their defaults (see 'Train SOC model')."))
        html.table(sorted(request["train"].items()), (self.tr("Setting"), self.tr("Value")))
        html.heading(self.tr("Plots"))
        captions = {
            "calibration": self.tr(
                "Calibration of the out-of-fold predictions: observed against expected coverage of the "
                "central intervals; on the diagonal the intervals are calibrated, below it too narrow."
            ),
            "intervals": self.tr(
                "Observed against out-of-fold predicted, with the 90 % intervals; red points fall outside "
                "their interval."
            ),
        }
        for name, caption in captions.items():
            html.image(report["plots"][name], caption)
        html.write(path)
