"""Imagery features at points: TerraMind embeddings of S2 / S1 / DEM chips, or chip statistics."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
)

from .inputs import ModelInputsAlgorithm


class ImageryFeaturesAlgorithm(ModelInputsAlgorithm):
    VALID_COUNT = "VALID_COUNT"
    BACKBONE_USED = "BACKBONE_USED"

    def name(self) -> str:
        return "imageryfeatures"

    def displayName(self) -> str:
        return self.tr("Imagery features at points (TerraMind / chip statistics)")

    def shortHelpString(self) -> str:
        return self.tr(
            "Cuts a chip around each point from each imagery modality (Sentinel-2, Sentinel-1, DEM) and "
            "adds the features of the soil model's imagery stream as fields, with 'imagery_valid' (1 when "
            "every feature has a value).\n\n"
            "Chip: 'Chip size' x 'Chip size' cells of 10 m (a multiple of 16; 64 = 640 m x 640 m), "
            "north-up in the point's UTM zone, centred on the point; rasters in any CRS are read on the "
            "fly (nearest cell). A modality whose chip is less than half inside the raster and off nodata "
            "is masked: its chip statistics are NULL; TerraMind embeds the modalities left (NULL when none "
            "is).\n\n"
            "Backbone: terramind_v1_tiny / small / base gives a TerraMind embedding ('terramind.000' ..., "
            "192 / 384 / 768 fields) from a local weights file (.pt or .safetensors; default: the "
            "TerraMind folder of the core environment); none gives three fields per band, "
            "'S2L2A.RED.point' (the value at the point), '.mean' and '.sd' (over the chip), in the "
            "band's units (Sentinel-2 reflectance x 10000, Sentinel-1 dB, DEM metres); auto uses "
            "TerraMind tiny when its weights are found, chip statistics otherwise.\n\n"
            "Bands are recognised from the band descriptions or a band id in the file name "
            "(T18SVG_B8A.tif, s1_VH.tif); for Sentinel-2 files without either, name the bands, one group "
            "per Sentinel-2 raster in order, e.g. "
            "'B04,B08;B11' (an empty group reads the file). Reflectance in 0-1 is scaled by 10000 and "
            "Sentinel-1 linear power converted to dB (units: auto decides by the values); the log says "
            "so. Embeddings are cached per point (default cache folder: ~/.cache/soilcarbon/embeddings), "
            "so a second run over the same rasters computes nothing.\n\n"
            "Use 'Selected features only' on the input to work on a selection.\n\n"
            "Example (command line):\n"
            "qgis_process run soilcarbon:imageryfeatures -- INPUT=samples.gpkg S2=T18SVG_B04.tif "
            "S2=T18SVG_B08.tif S2_LEVEL=0 DEM=dem.tif BACKBONE=1 OUTPUT=imagery.gpkg"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_points_input()
        self.add_chip_inputs()
        self.add_chip_settings()
        self.add_device_input()
        self.add_points_output(self.tr("Points with imagery features"))
        self.addOutput(QgsProcessingOutputNumber(self.VALID_COUNT, self.tr("Points with imagery features")))
        self.addOutput(QgsProcessingOutputString(self.BACKBONE_USED, self.tr("Backbone used")))

    def processAlgorithm(self, parameters, context, feedback):
        source = self.points_source(parameters, context)
        chips = self.chips(parameters, context)
        if chips is None:
            raise QgsProcessingException(
                self.tr(
                    "No imagery raster was given: choose Sentinel-2 rasters (S2), Sentinel-1 rasters (S1) "
                    "or a DEM (DEM)."
                )
            )
        settings = self.chip_settings(parameters, context)
        if chips["weights"] and settings["backbone"] == "none":
            feedback.pushWarning(
                self.tr("Backbone 'none' uses no TerraMind weights: '{0}' is ignored.").format(
                    chips["weights"]
                )
            )

        points = self.export_points(source, context, feedback, source.sourceName())
        features_path = os.path.join(os.path.dirname(points), "imagery.gpkg")
        summary = self.run_worker(
            "imagery_features",
            {
                "points": {"path": points, "layer": "points"},
                "chips": chips,
                "chip_settings": settings,
                "output": features_path,
                "device": self.device(parameters, context),
            },
            feedback,
            outputs=[features_path],
            progress_range=(5.0, 90.0),
        )
        self.log_report(summary, feedback)

        dest_id = self.write_joined(parameters, context, feedback, source, summary)
        return {
            self.OUTPUT: dest_id,
            self.VALID_COUNT: summary["n_valid"],
            self.BACKBONE_USED: summary["imagery"]["backbone"],
        }

    def log_report(self, summary: dict[str, Any], feedback: QgsProcessingFeedback) -> None:
        """What the imagery stream did: backbone, notes (unit conversions, weights), masked chips, cache."""
        report = summary["imagery"]
        if report["backbone"] == "none":
            kind = self.tr("chip statistics (point value, chip mean and sd per band)")
        else:
            kind = self.tr("TerraMind embeddings")
        feedback.pushInfo(
            self.tr("Backbone: {0}, {1}: {2} fields.").format(
                report["backbone"], kind, len(summary["fields"])
            )
        )
        for note in report["notes"]:
            feedback.pushInfo(note)
        threshold = summary["settings"]["min_valid"]
        for modality, count in report["masked"].items():
            feedback.pushInfo(
                self.tr(
                    "{0}: {1} of {2} chip(s) masked (less than {3:.0%} of the chip inside the raster and off "
                    "nodata)."
                ).format(modality, count, report["encoded"], threshold)
            )
        feedback.pushInfo(
            self.tr("Embedding cache: {0} of {1} point(s) read from the cache, {2} computed.").format(
                report["cache_hits"], report["points"], report["encoded"]
            )
        )
        message = self.tr("{0} of {1} point(s) have imagery features ({2} = 1).").format(
            summary["n_valid"], summary["n_points"], summary["valid_field"]
        )
        (feedback.pushInfo if summary["n_valid"] else feedback.pushWarning)(message)
