"""The base of algorithms that feed a soil model: the model file, covariate rasters by name, imagery
chips (Sentinel-2, Sentinel-1, DEM), the sampling date and the compute device.

Parameter ids are shared by every algorithm that has them, so batch tables, models and the dock use
the same names everywhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingFeedback,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

from ..model_manifest import ManifestError, ModelSummary, model_summary
from .base import SoilCarbonAlgorithm

# The core's choices (soilcarbon_core, which the plugin may not import), in enum order.
S2_LEVELS = ("L2A", "L1C")
S1_UNITS = ("auto", "db", "linear")
BACKBONES = ("auto", "none", "terramind_v1_tiny", "terramind_v1_small", "terramind_v1_base")
DEVICES = ("auto", "cpu", "cuda")
METHODS = ("nearest", "bilinear")


def field_name(name: str) -> str:
    """The name the core gives a raster's field (``soilcarbon_core.io.rasters.field_name``)."""
    cleaned = re.sub(r"\W+", "_", name.strip()).strip("_") or "band"
    return f"f_{cleaned}" if cleaned[0].isdigit() else cleaned


class ModelInputsAlgorithm(SoilCarbonAlgorithm):
    """Adds and reads the inputs of a soil model; subclasses pick the ones they need."""

    MODEL = "MODEL"
    RASTERS = "RASTERS"
    RASTER_NAMES = "RASTER_NAMES"
    METHOD = "METHOD"
    DATE_FIELD = "DATE_FIELD"
    DATE = "DATE"
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
    TEMPLATE = "TEMPLATE"
    EXTENT = "EXTENT"
    RESOLUTION = "RESOLUTION"
    CRS = "CRS"
    RASTER_PARAMETERS = (RASTERS, S2, S1, DEM)

    # Parameters ------------------------------------------------------------------------------------

    def add_model_input(self, description: str = "") -> None:
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL,
                description or self.tr("SOC model (.zip from 'Train SOC model')"),
                fileFilter=self.tr("Soil carbon models (*.zip)"),
            )
        )

    def add_raster_inputs(self, description: str = "", optional: bool = True) -> None:
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.RASTERS,
                description or self.tr("Covariate rasters (named as at training)"),
                QgsProcessing.TypeRaster,
                optional=optional,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.RASTER_NAMES,
                self.tr("Raster names, in the rasters' order (comma separated; empty: the layer names)"),
                optional=True,
            )
        )

    def add_method_input(self) -> None:
        self.addParameter(
            QgsProcessingParameterEnum(
                self.METHOD,
                self.tr("Raster sampling"),
                [self.tr("Nearest"), self.tr("Bilinear")],
                defaultValue=1,
            )
        )

    def add_date_inputs(self, with_field: bool = True) -> None:
        if with_field:
            self.addParameter(
                QgsProcessingParameterField(
                    self.DATE_FIELD,
                    self.tr("Sampling date field (for models trained with dates)"),
                    parentLayerParameterName=self.INPUT,
                    type=QgsProcessingParameterField.Any,
                    optional=True,
                )
            )
        self.addParameter(
            QgsProcessingParameterString(
                self.DATE, self.tr("Sampling date for places without one (YYYY-MM-DD)"), optional=True
            )
        )

    def add_chip_inputs(self, advanced: bool = False) -> None:
        """Sentinel-2, Sentinel-1 and DEM rasters for the imagery stream's chips."""
        parameters = [
            QgsProcessingParameterMultipleLayers(
                self.S2,
                self.tr("Sentinel-2 rasters (imagery chips)"),
                QgsProcessing.TypeRaster,
                optional=True,
            ),
            QgsProcessingParameterEnum(
                self.S2_LEVEL, self.tr("Sentinel-2 product level"), list(S2_LEVELS), defaultValue=0
            ),
            QgsProcessingParameterString(
                self.S2_BANDS,
                self.tr("Sentinel-2 band names per raster (e.g. B04,B08;B11; empty: from the files)"),
                optional=True,
            ),
            QgsProcessingParameterMultipleLayers(
                self.S1, self.tr("Sentinel-1 GRD rasters (VV, VH)"), QgsProcessing.TypeRaster, optional=True
            ),
            QgsProcessingParameterEnum(
                self.S1_UNITS, self.tr("Sentinel-1 units"), list(S1_UNITS), defaultValue=0
            ),
            QgsProcessingParameterRasterLayer(
                self.DEM, self.tr("DEM for imagery chips (metres)"), optional=True
            ),
            QgsProcessingParameterFile(
                self.TERRAMIND_WEIGHTS,
                self.tr("TerraMind weights (.pt or .safetensors; empty: the default folder)"),
                fileFilter=self.tr("TerraMind weights (*.pt *.safetensors)"),
                optional=True,
            ),
            QgsProcessingParameterFile(
                self.EMBEDDING_CACHE,
                self.tr("Embedding cache folder (empty: ~/.cache/soilcarbon/embeddings)"),
                behavior=QgsProcessingParameterFile.Folder,
                optional=True,
            ),
        ]
        self.add_parameters(parameters, advanced)

    def add_chip_settings(self, advanced: bool = False) -> None:
        parameters = (
            QgsProcessingParameterNumber(
                self.CHIP_SIZE,
                self.tr("Chip size (10 m cells, a multiple of 16)"),
                QgsProcessingParameterNumber.Integer,
                defaultValue=64,
                minValue=16,
            ),
            QgsProcessingParameterEnum(
                self.BACKBONE, self.tr("Imagery backbone"), list(BACKBONES), defaultValue=0
            ),
        )
        self.add_parameters(parameters, advanced)

    def add_grid_inputs(self, template_description: str) -> None:
        """A grid: a template raster (TEMPLATE), or an extent (EXTENT), a cell size (RESOLUTION) and a CRS."""
        self.addParameter(
            QgsProcessingParameterRasterLayer(self.TEMPLATE, template_description, optional=True)
        )
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Or: extent"), optional=True))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.RESOLUTION,
                self.tr("Cell size (CRS units, with an extent)"),
                QgsProcessingParameterNumber.Double,
                optional=True,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterCrs(
                self.CRS, self.tr("CRS of the grid (default: the extent's CRS)"), optional=True
            )
        )

    def add_device_input(self) -> None:
        self.addParameter(
            QgsProcessingParameterEnum(
                self.DEVICE,
                self.tr("Compute device (auto: the GPU when there is one)"),
                list(DEVICES),
                defaultValue=0,
            )
        )

    def checkParameterValues(self, parameters, context):
        # Before Processing's generic check, whose message would only say "Incorrect parameter value".
        model = parameters.get(self.MODEL)
        if self.parameterDefinition(self.MODEL) is not None and isinstance(model, str) and model:
            try:
                model_summary(model)
            except ManifestError as err:
                return False, str(err)
        return super().checkParameterValues(parameters, context)

    # Values ----------------------------------------------------------------------------------------

    def model_summary(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[str, ModelSummary]:
        """The model file and what its manifest says, or an error naming the file and what to give."""
        path = self.parameterAsFile(parameters, self.MODEL, context)
        if not path:
            raise QgsProcessingException(self.tr("Choose a model file (MODEL)."))
        try:
            summary = model_summary(path)
        except ManifestError as err:
            raise QgsProcessingException(str(err)) from err
        return path, summary

    def soc_model(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[str, ModelSummary]:
        """Like :meth:`model_summary`, for algorithms that need an SOC (SpTGNN) model."""
        path, summary = self.model_summary(parameters, context)
        if summary.kind != "sptgnn":
            raise QgsProcessingException(
                self.tr(
                    "'{0}' is a {1} model, not an SOC model. Give a model from 'Train SOC model'."
                ).format(path, summary.kind or "different")
            )
        return path, summary

    def raster_path(self, layer) -> str:
        path = super().raster_path(layer)
        if isinstance(layer, QgsRasterLayer) and not layer.crs().isValid():
            raise QgsProcessingException(
                self.tr(
                    "The raster '{0}' ({1}) has no CRS or an unknown one. Assign its CRS (Raster › "
                    "Projections › Assign Projection, or Layer Properties › Source) and save it as GeoTIFF."
                ).format(layer.name(), path)
            )
        return path

    def raster_paths(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> list[str]:
        """The files of a (multiple) raster parameter, in the order given."""
        paths = [self.raster_path(layer) for layer in self.parameterAsLayerList(parameters, name, context)]
        for path in paths:
            if "=" in path:  # the core reads 'PATH=BANDS' and 'PATH=NAME'
                raise QgsProcessingException(
                    self.tr("The raster path '{0}' contains '='; rename or copy the file.").format(path)
                )
        return paths

    def named_rasters(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        summary: ModelSummary | None = None,
        *,
        parameter: str = RASTERS,
        names_parameter: str | None = RASTER_NAMES,
    ) -> list[dict[str, str]]:
        """``{path, name}`` per layer of ``parameter`` (RASTERS), named by ``names_parameter``
        (RASTER_NAMES; None: the parameter has no names), else by :meth:`raster_name`."""
        layers = self.parameterAsLayerList(parameters, parameter, context)
        paths = [self.raster_path(layer) for layer in layers]
        text = self.parameterAsString(parameters, names_parameter, context).strip() if names_parameter else ""
        if text:
            names = [name.strip() for name in text.split(",")]
        else:
            known = {field_name(name) for name in summary.raster_names} if summary else set()
            names = [self.raster_name(layer, path, known) for layer, path in zip(layers, paths, strict=True)]
        if len(names) != len(layers):
            raise QgsProcessingException(
                self.tr(
                    "'Raster names' gives {0} name(s) for {1} raster(s). Give one name per raster, in the "
                    "rasters' order, separated by commas (or leave it empty to use the layer names)."
                ).format(len(names), len(layers))
            )
        return [{"path": path, "name": name} for path, name in zip(paths, names, strict=True)]

    @staticmethod
    def raster_name(layer: QgsMapLayer, path: str, known: set[str]) -> str:
        """A raster's name: its layer's name or its file name without extension, whichever is ``known``
        (a model's raster names, field-safe); else the layer's name, except for a layer Processing loaded
        from a path, whose name is the file name cut at its first dot ('dem.v2.tif' gives 'dem'): then
        the file name without extension ('dem.v2')."""
        stem = Path(path).stem
        if field_name(layer.name()) in known:
            return layer.name()
        if field_name(stem) in known or layer.name() == Path(path).name.split(".")[0]:
            return stem
        return layer.name()

    def check_rasters(self, summary: ModelSummary, rasters: list[dict[str, str]], model_path: str) -> None:
        """Every raster the model was trained with must be given (by name) before the worker starts."""
        given = {field_name(raster["name"]) for raster in rasters}
        missing = [name for name in summary.raster_names if name not in given]
        if missing:
            raise QgsProcessingException(
                self.tr(
                    "The model '{0}' was trained with rasters named {1}; missing: {2}. Add those rasters; a "
                    "raster's name is its layer name or its file name, or set 'Raster names' (comma "
                    "separated, in order)."
                ).format(os.path.basename(model_path), ", ".join(summary.raster_names), ", ".join(missing))
            )

    def model_rasters(
        self, parameters: dict[str, Any], context: QgsProcessingContext, model: str, summary: ModelSummary
    ) -> tuple[list[dict[str, str]], dict[str, Any] | None]:
        """The worker's ``rasters`` and ``chips`` for ``model``, each checked against what it was trained
        with."""
        rasters = self.named_rasters(parameters, context, summary)
        self.check_rasters(summary, rasters, model)
        chips = self.chips(parameters, context)
        self.check_chips(summary, chips, model)
        return rasters, chips

    def export_query_points(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        source: QgsProcessingFeatureSource,
        model: str,
        summary: ModelSummary,
    ) -> dict[str, Any]:
        """The worker's ``points``: ``source`` exported with the model's point fields and the date field."""
        label = source.sourceName()
        fields = self.check_fields(summary, source, label, model)
        date_field = self.date_field(parameters, context, source, summary)
        path = self.export_points(
            source, context, feedback, label, [*fields, *([date_field] if date_field else [])]
        )
        return {"path": path, "layer": "points", "date_field": date_field}

    def s2_specs(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str]:
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

    def chips(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any] | None:
        """The worker's ``chips``: imagery rasters per modality, or None when none is given."""
        s2 = self.s2_specs(parameters, context)
        s1 = self.raster_paths(parameters, self.S1, context)
        dem = self.raster_paths(parameters, self.DEM, context)
        if not (s2 or s1 or dem):
            return None
        return {
            "s2": s2,
            "s2_level": S2_LEVELS[self.parameterAsEnum(parameters, self.S2_LEVEL, context)],
            "s1": s1,
            "s1_units": S1_UNITS[self.parameterAsEnum(parameters, self.S1_UNITS, context)],
            "dem": dem,
            "weights": self.parameterAsFile(parameters, self.TERRAMIND_WEIGHTS, context) or None,
            "cache_dir": self.parameterAsFile(parameters, self.EMBEDDING_CACHE, context) or None,
        }

    def chip_settings(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        return {
            "backbone": BACKBONES[self.parameterAsEnum(parameters, self.BACKBONE, context)],
            "chip_size": self.parameterAsInt(parameters, self.CHIP_SIZE, context),
        }

    def check_chips(self, summary: ModelSummary, chips: dict[str, Any] | None, model_path: str) -> None:
        if summary.chip_modalities and chips is None:
            wanted = "; ".join(f"{m}: {', '.join(b)}" for m, b in summary.chip_modalities.items())
            raise QgsProcessingException(
                self.tr(
                    "The model '{0}' reads imagery chips ({1}) and no imagery raster was given. Give the "
                    "same Sentinel-2 / Sentinel-1 / DEM rasters as at training."
                ).format(os.path.basename(model_path), wanted)
            )

    def grid(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | dict[str, Any]:
        """The worker's ``grid``: the template's file, or {extent, resolution, crs}."""
        template = self.parameterAsRasterLayer(parameters, self.TEMPLATE, context)
        if template is not None:
            return self.raster_path(template)
        if not parameters.get(self.EXTENT):
            raise QgsProcessingException(
                self.tr(
                    "Give the map's grid: a template raster (TEMPLATE), or an extent (EXTENT) and a cell "
                    "size."
                )
            )
        crs = self.parameterAsCrs(parameters, self.CRS, context)
        if not crs.isValid():
            crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
        if not crs.isValid():
            raise QgsProcessingException(
                self.tr("The map extent has no CRS; choose the map's CRS (CRS) as well.")
            )
        extent = self.parameterAsExtent(parameters, self.EXTENT, context, crs)
        resolution = self.parameterAsDouble(parameters, self.RESOLUTION, context)
        if not resolution > 0:
            raise QgsProcessingException(
                self.tr("With an extent, give the cell size (RESOLUTION, in the units of {0}).").format(
                    crs.authid() or crs.description()
                )
            )
        if extent.isEmpty():
            raise QgsProcessingException(self.tr("The map extent is empty; draw or type a larger one."))
        return {
            "extent": [extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()],
            "resolution": resolution,
            "crs": crs.authid() or crs.toWkt(),
        }

    def device(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        return DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]

    def method(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        return METHODS[self.parameterAsEnum(parameters, self.METHOD, context)]

    def date(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """DATE as YYYY-MM-DD, or None; a malformed date is an error naming the format."""
        import datetime as dt

        text = self.parameterAsString(parameters, self.DATE, context).strip()
        if not text:
            return None
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError as err:
            raise QgsProcessingException(
                self.tr("The sampling date '{0}' is not a date; write it as YYYY-MM-DD.").format(text)
            ) from err

    def date_field(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        source: QgsProcessingFeatureSource,
        summary: ModelSummary | None = None,
    ) -> str | None:
        """DATE_FIELD, or the model's date field when the points have a field of that name."""
        name = self.parameterAsString(parameters, self.DATE_FIELD, context) or None
        if name is None and summary is not None and summary.date_field:
            if source.fields().lookupField(summary.date_field) >= 0:
                name = summary.date_field
        return name

    def check_fields(
        self, summary: ModelSummary, source: QgsProcessingFeatureSource, layer_label: str, model_path: str
    ) -> list[str]:
        """The point fields the model reads, each of which the layer must have."""
        missing = [name for name in summary.fields if source.fields().lookupField(name) < 0]
        if missing:
            raise QgsProcessingException(
                self.tr(
                    "The model '{0}' reads the point field(s) {1}, which '{2}' lacks. Add them to the layer "
                    "(same names as at training)."
                ).format(os.path.basename(model_path), ", ".join(missing), layer_label)
            )
        return list(summary.fields)

    def log_model(self, summary: ModelSummary, feedback: QgsProcessingFeedback) -> None:
        for line in summary.describe().splitlines():
            feedback.pushInfo(line)
