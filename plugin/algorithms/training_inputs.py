"""The inputs shared by 'Train SOC model' and 'Evaluate model': labelled points, a target, covariates
(rasters, imagery rasters, point fields, imagery chips), the ensemble and its training settings, read
into the worker's ``train`` / ``evaluate`` parameters, and the report sections that describe them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..model_manifest import ManifestError
from ..report import HtmlReport
from .inputs import ModelInputsAlgorithm, field_name


class TrainingInputsAlgorithm(ModelInputsAlgorithm):
    """Adds the training inputs (:meth:`add_training_inputs`) and reads them (:meth:`training_request`)."""

    TARGET_FIELD = "TARGET_FIELD"
    UNIT = "UNIT"
    IMAGERY = "IMAGERY"
    COVARIATE_FIELDS = "COVARIATE_FIELDS"
    ELEVATION = "ELEVATION"
    SLOPE = "SLOPE"
    MEMBERS = "MEMBERS"
    EPOCHS = "EPOCHS"
    TRAIN_SETTINGS = "TRAIN_SETTINGS"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    R2 = "R2"
    RMSE = "RMSE"
    RASTER_PARAMETERS = (*ModelInputsAlgorithm.RASTER_PARAMETERS, IMAGERY)

    def inputs_help(self) -> str:
        """The help text's paragraphs on the shared inputs."""
        return self.tr(
            "Inputs: labelled sample points ('Selected features only' trains on a selection) with a numeric "
            "target field (e.g. an SOC stock in t/ha; give its unit, stored in the model and shown in every "
            "legend). Covariates: rasters, sampled at the points (bilinear) and named by their layer names "
            "or by 'Raster names' (the names are stored in the model: give the same names at prediction); "
            "imagery rasters, whose bands feed the imagery stream and the spectral relation; numeric point "
            "fields. 'Elevation raster' and 'Slope raster' name the covariate rasters (by their names) that "
            "carry elevation (m) and slope for the elevation relation; leave them empty to go without it. "
            "A sampling date field enables the temporal encoding. Imagery chips (Sentinel-2, Sentinel-1, "
            "DEM; advanced) feed TerraMind or chip statistics into the imagery stream.\n\n"
            "Every raster needs a CRS; points outside a raster or on its nodata are left out of training. "
            "'Ensemble members' models are trained (deep ensemble: their disagreement is the epistemic "
            "uncertainty). Advanced: epochs, and more training settings as a JSON object, e.g. "
            '{"batch_size": 64, "learning_rate": 0.003, "calibration": "isotonic", "seed": 1} (batch_size, '
            "learning_rate, weight_decay, loss beta_nll/gaussian_nll, beta, moran_weight, patience, "
            "bootstrap, calibration isotonic/sigma_scaling/sigma_scaling_ece/none, seed)."
        )

    # Parameters ------------------------------------------------------------------------------------

    def add_training_inputs(self) -> None:
        """Points and target, covariates, ensemble and training settings, imagery chips, device."""
        self.add_points_input()
        self.addParameter(
            QgsProcessingParameterField(
                self.TARGET_FIELD,
                self.tr("Target field (numeric, e.g. SOC stock)"),
                parentLayerParameterName=self.INPUT,
                type=QgsProcessingParameterField.Numeric,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.UNIT, self.tr("Target unit (e.g. t/ha, g/kg, %)"), defaultValue="", optional=True
            )
        )
        self.add_raster_inputs(self.tr("Covariate rasters"))
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.IMAGERY,
                self.tr("Imagery rasters (bands feed the imagery stream; named by layer names)"),
                QgsProcessing.TypeRaster,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.COVARIATE_FIELDS,
                self.tr("Covariate fields (numeric point fields)"),
                parentLayerParameterName=self.INPUT,
                type=QgsProcessingParameterField.Numeric,
                allowMultiple=True,
                optional=True,
            )
        )
        for name, description in (
            (self.ELEVATION, self.tr("Elevation raster (its raster name; empty: no elevation relation)")),
            (self.SLOPE, self.tr("Slope raster (its raster name; optional)")),
        ):
            self.addParameter(QgsProcessingParameterString(name, description, defaultValue="", optional=True))
        self.addParameter(
            QgsProcessingParameterField(
                self.DATE_FIELD,
                self.tr("Sampling date field (enables the temporal encoding)"),
                parentLayerParameterName=self.INPUT,
                type=QgsProcessingParameterField.Any,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MEMBERS,
                self.tr("Ensemble members"),
                QgsProcessingParameterNumber.Integer,
                defaultValue=5,
                minValue=1,
            )
        )
        advanced = [
            QgsProcessingParameterNumber(
                self.EPOCHS,
                self.tr("Epochs (at most; early stopping on the validation samples)"),
                QgsProcessingParameterNumber.Integer,
                defaultValue=60,
                minValue=1,
            ),
            QgsProcessingParameterString(
                self.TRAIN_SETTINGS,
                self.tr('More training settings (JSON object, e.g. {"batch_size": 64, "seed": 1})'),
                optional=True,
            ),
        ]
        self.add_advanced(*advanced)
        self.add_chip_inputs(advanced=True)
        self.add_chip_settings(advanced=True)
        self.add_device_input()

    def report_or_error(self, write: Callable[[], object], path: str) -> None:
        """Run ``write`` (the HTML report); failing to write it is an error naming the file, not a traceback
        after minutes of training."""
        try:
            write()
        except (OSError, ValueError, KeyError, ManifestError) as err:
            raise QgsProcessingException(
                self.tr("The report '{0}' could not be written ({1}). Choose a writable file for it.").format(
                    path, err
                )
            ) from err

    def add_report_output(self, description: str) -> None:
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_REPORT, description, fileFilter=self.tr("HTML files (*.html *.htm)")
            )
        )

    def add_metric_outputs(self) -> None:
        self.addOutput(QgsProcessingOutputNumber(self.R2, self.tr("R²")))
        self.addOutput(QgsProcessingOutputNumber(self.RMSE, self.tr("RMSE (target unit)")))

    # Values ----------------------------------------------------------------------------------------

    def numeric_fields(
        self, source: QgsProcessingFeatureSource, names: list[str], label: str, role: str
    ) -> list[str]:
        """``names``, each a numeric field of the points, or an error naming the field and the choices."""
        fields = source.fields()
        numeric = [field.name() for field in fields if field.isNumeric()]
        for name in names:
            index = fields.lookupField(name)
            if index < 0:
                raise QgsProcessingException(
                    self.tr(
                        "The points layer '{0}' has no field '{1}' ({2}). Its numeric fields: {3}."
                    ).format(label, name, role, ", ".join(numeric) or self.tr("none"))
                )
            if not fields.at(index).isNumeric():
                raise QgsProcessingException(
                    self.tr(
                        "The field '{0}' of '{1}' ({2}) is not numeric but {3}. Choose a numeric field ({4}) "
                        'or convert it with the Field calculator (to_real("{0}")).'
                    ).format(name, label, role, fields.at(index).typeName(), ", ".join(numeric) or "none")
                )
        return names

    def relation_raster(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext, rasters: list[dict]
    ) -> str | None:
        """ELEVATION / SLOPE: the field-safe name of one of the covariate rasters, or None when empty."""
        text = self.parameterAsString(parameters, name, context).strip()
        if not text:
            return None
        names = [field_name(raster["name"]) for raster in rasters]
        if field_name(text) not in names:
            role = self.tr("elevation") if name == self.ELEVATION else self.tr("slope")
            raise QgsProcessingException(
                self.tr(
                    "The {0} raster '{1}' ({2}) is not among the covariate rasters ({3}). Give the name of "
                    "one of them: its layer name, or its name in 'Raster names'."
                ).format(role, text, name, ", ".join(names) or self.tr("none given"))
            )
        return field_name(text)

    def train_settings(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        """The worker's ``train``: EPOCHS and the JSON object of TRAIN_SETTINGS."""
        text = self.parameterAsString(parameters, self.TRAIN_SETTINGS, context).strip()
        settings: Any = {}
        if text:
            try:
                settings = json.loads(text)
            except json.JSONDecodeError as err:
                raise QgsProcessingException(
                    self.tr(
                        "The training settings (TRAIN_SETTINGS) are not valid JSON: {0} at character {1} of "
                        '\'{2}\'. Write a JSON object, e.g. {{"batch_size": 64, "learning_rate": 0.003}}.'
                    ).format(err.msg, err.pos + 1, text)
                ) from err
            if not isinstance(settings, dict):
                raise QgsProcessingException(
                    self.tr(
                        "The training settings (TRAIN_SETTINGS) must be a JSON object such as "
                        "{{\"batch_size\": 64}}, not '{0}'."
                    ).format(text)
                )
            if "epochs" in settings:
                raise QgsProcessingException(
                    self.tr("The training settings set 'epochs': set it with 'Epochs' (EPOCHS) instead.")
                )
        return {"epochs": self.parameterAsInt(parameters, self.EPOCHS, context), **settings}

    def check_names(self, fields: list[str], rasters: list[dict[str, str]]) -> None:
        """Raster names must differ from each other and from the point fields used (a raster named like a
        field would replace it); compared as the core makes them field-safe, ignoring case."""
        seen = {field_name(name).lower(): self.tr("the point field '{0}'").format(name) for name in fields}
        for raster in rasters:
            key = field_name(raster["name"]).lower()
            if key in seen:
                raise QgsProcessingException(
                    self.tr(
                        "Two inputs are named '{0}': the raster '{1}' and {2}. Name the rasters apart with "
                        "'Raster names' or by renaming their layers."
                    ).format(field_name(raster["name"]), raster["path"], seen[key])
                )
            seen[key] = self.tr("the raster '{0}'").format(raster["path"])

    def training_request(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        source: QgsProcessingFeatureSource,
    ) -> dict[str, Any]:
        """The worker's ``train`` / ``evaluate`` parameters (all but ``output``) for the points ``source``,
        every input checked before the points are exported (progress 0-5)."""
        label = source.sourceName()
        target = self.parameterAsString(parameters, self.TARGET_FIELD, context)
        if not target:
            raise QgsProcessingException(
                self.tr("Choose the target field (TARGET_FIELD) of '{0}'.").format(label)
            )
        self.numeric_fields(source, [target], label, self.tr("the target"))
        covariate_fields = self.numeric_fields(
            source,
            list(dict.fromkeys(self.parameterAsFields(parameters, self.COVARIATE_FIELDS, context))),
            label,
            self.tr("a covariate"),
        )
        if target in covariate_fields:
            raise QgsProcessingException(
                self.tr("The target '{0}' is also a covariate field; remove it from the covariates.").format(
                    target
                )
            )
        rasters = self.named_rasters(parameters, context)
        imagery = self.named_rasters(parameters, context, parameter=self.IMAGERY, names_parameter=None)
        self.check_names([target, *covariate_fields], [*rasters, *imagery])
        elevation = self.relation_raster(parameters, self.ELEVATION, context, rasters)
        slope = self.relation_raster(parameters, self.SLOPE, context, rasters)
        if slope and not elevation:
            feedback.pushWarning(
                self.tr("A slope raster without an elevation raster is used as a covariate only.")
            )
        train = self.train_settings(parameters, context)
        chips = self.chips(parameters, context)
        date_field = self.date_field(parameters, context, source)
        points = self.export_points(
            source,
            context,
            feedback,
            label,
            [target, *covariate_fields, *([date_field] if date_field else [])],
        )
        return {
            "points": {"path": points, "layer": "points", "date_field": date_field},
            "source": label,
            "target": target,
            "unit": self.parameterAsString(parameters, self.UNIT, context).strip(),
            "rasters": rasters,
            "imagery": imagery,
            "covariate_fields": covariate_fields,
            "elevation": elevation,
            "slope": slope,
            "chips": chips,
            "chip_settings": self.chip_settings(parameters, context),
            "members": self.parameterAsInt(parameters, self.MEMBERS, context),
            "train": train,
            "device": self.device(parameters, context),
        }

    # Report ----------------------------------------------------------------------------------------

    def report_inputs(self, report: HtmlReport, request: dict[str, Any], points_label: str) -> None:
        """The inputs section: points, target, covariates and what feeds the graph's relations."""
        chips = request["chips"] or {}
        report.heading(self.tr("Inputs"))
        report.table(
            [
                (self.tr("Points"), points_label),
                (self.tr("Target"), f"{request['target']} ({request['unit'] or self.tr('no unit')})"),
                (self.tr("Covariate rasters"), [f"{r['name']} ({r['path']})" for r in request["rasters"]]),
                (self.tr("Imagery rasters"), [f"{r['name']} ({r['path']})" for r in request["imagery"]]),
                (self.tr("Covariate fields"), request["covariate_fields"]),
                (self.tr("Elevation / slope (elevation relation)"), [request["elevation"], request["slope"]]),
                (self.tr("Sampling date field"), request["points"]["date_field"]),
                (
                    self.tr("Imagery chips"),
                    [f"{m}: {len(chips[m])} raster(s)" for m in ("s2", "s1", "dem") if chips.get(m)],
                ),
                (self.tr("Device"), request["device"]),
            ]
        )
