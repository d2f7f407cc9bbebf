"""Imagery features at points: TerraMind embeddings of S2 / S1 / DEM chips, or chip statistics."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import SoilCarbonAlgorithm

# The core's choices (soilcarbon_core.imagery, which the plugin may not import), in enum order.
S2_LEVELS = ("L2A", "L1C")
S1_UNITS = ("auto", "db", "linear")
BACKBONES = ("auto", "none", "terramind_v1_tiny", "terramind_v1_small", "terramind_v1_base")
DEVICES = ("auto", "cpu", "cuda")


class ImageryFeaturesAlgorithm(SoilCarbonAlgorithm):
    S2 = "S2"
    S2_LEVEL = "S2_LEVEL"
    S2_BANDS = "S2_BANDS"
    S1 = "S1"
    S1_UNITS = "S1_UNITS"
    DEM = "DEM"
    CHIP_SIZE = "CHIP_SIZE"
    BACKBONE = "BACKBONE"
    TERRAMIND_WEIGHTS = "TERRAMIND_WEIGHTS"
    EMBEDDING_CACHE = "EMBEDDING_CACHE"
    DEVICE = "DEVICE"
    VALID_COUNT = "VALID_COUNT"
    BACKBONE_USED = "BACKBONE_USED"
    RASTER_PARAMETERS = (S2, S1, DEM)

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
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.S2, self.tr("Sentinel-2 rasters"), QgsProcessing.TypeRaster, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.S2_LEVEL, self.tr("Sentinel-2 product level"), list(S2_LEVELS), defaultValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.S2_BANDS,
                self.tr("Sentinel-2 band names per raster (e.g. B04,B08;B11; empty: from the files)"),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.S1, self.tr("Sentinel-1 GRD rasters (VV, VH)"), QgsProcessing.TypeRaster, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.S1_UNITS, self.tr("Sentinel-1 units"), list(S1_UNITS), defaultValue=0
            )
        )
        self.addParameter(QgsProcessingParameterRasterLayer(self.DEM, self.tr("DEM (metres)"), optional=True))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.CHIP_SIZE,
                self.tr("Chip size (10 m cells, a multiple of 16)"),
                QgsProcessingParameterNumber.Integer,
                defaultValue=64,
                minValue=16,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(self.BACKBONE, self.tr("Backbone"), list(BACKBONES), defaultValue=0)
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.TERRAMIND_WEIGHTS,
                self.tr("TerraMind weights (.pt or .safetensors; empty: the default folder)"),
                fileFilter=self.tr("TerraMind weights (*.pt *.safetensors)"),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.EMBEDDING_CACHE,
                self.tr("Embedding cache folder (empty: ~/.cache/soilcarbon/embeddings)"),
                behavior=QgsProcessingParameterFile.Folder,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), list(DEVICES), defaultValue=0)
        )
        self.add_points_output(self.tr("Points with imagery features"))
        self.addOutput(QgsProcessingOutputNumber(self.VALID_COUNT, self.tr("Points with imagery features")))
        self.addOutput(QgsProcessingOutputString(self.BACKBONE_USED, self.tr("Backbone used")))

    def s2_specs(self, parameters: dict[str, Any], context) -> list[str]:
        """``PATH`` or ``PATH=BAND,BAND`` per Sentinel-2 raster, the band groups of S2_BANDS in order."""
        paths = self.raster_paths(parameters, self.S2, context)
        text = self.parameterAsString(parameters, self.S2_BANDS, context).strip()
        if not text:
            return paths
        groups = [",".join(b.strip() for b in group.split(",") if b.strip()) for group in text.split(";")]
        if len(groups) != len(paths):
            raise QgsProcessingException(
                self.tr(
                    "'{0}' names {1} band group(s) for {2} Sentinel-2 raster(s). Give one group per raster, "
                    "in the rasters' order, separated by ';' (e.g. B04,B08;B11); leave a group empty to "
                    "read the names from that file."
                ).format(text, len(groups), len(paths))
            )
        return [f"{path}={bands}" if bands else path for path, bands in zip(paths, groups, strict=True)]

    def raster_paths(self, parameters: dict[str, Any], name: str, context) -> list[str]:
        """The files of a (multiple) raster parameter, in the order given."""
        layers = self.parameterAsLayerList(parameters, name, context)
        paths = [self.raster_path(layer) for layer in layers]
        for path in paths:
            if "=" in path:  # the core reads 'PATH=BANDS'
                raise QgsProcessingException(
                    self.tr("The raster path '{0}' contains '='; rename or copy the file.").format(path)
                )
        return paths

    def processAlgorithm(self, parameters, context, feedback):
        source = self.points_source(parameters, context)
        s2 = self.s2_specs(parameters, context)
        s1 = self.raster_paths(parameters, self.S1, context)
        dem = self.raster_paths(parameters, self.DEM, context)
        if not (s2 or s1 or dem):
            raise QgsProcessingException(
                self.tr(
                    "No imagery raster was given: choose Sentinel-2 rasters (S2), Sentinel-1 rasters (S1) "
                    "or a DEM (DEM)."
                )
            )
        backbone = BACKBONES[self.parameterAsEnum(parameters, self.BACKBONE, context)]
        weights = self.parameterAsFile(parameters, self.TERRAMIND_WEIGHTS, context) or None
        if weights and backbone == "none":
            feedback.pushWarning(
                self.tr("Backbone 'none' uses no TerraMind weights: '{0}' is ignored.").format(weights)
            )

        points = self.export_points(source, context, feedback, source.sourceName())
        features_path = os.path.join(os.path.dirname(points), "imagery.gpkg")
        summary = self.run_worker(
            "imagery_features",
            {
                "points": {"path": points, "layer": "points"},
                "chips": {
                    "s2": s2,
                    "s2_level": S2_LEVELS[self.parameterAsEnum(parameters, self.S2_LEVEL, context)],
                    "s1": s1,
                    "s1_units": S1_UNITS[self.parameterAsEnum(parameters, self.S1_UNITS, context)],
                    "dem": dem,
                    "weights": weights,
                    "cache_dir": self.parameterAsFile(parameters, self.EMBEDDING_CACHE, context) or None,
                },
                "chip_settings": {
                    "backbone": backbone,
                    "chip_size": self.parameterAsInt(parameters, self.CHIP_SIZE, context),
                },
                "output": features_path,
                "device": DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
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
