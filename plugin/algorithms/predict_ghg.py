"""Predict GHG fluxes: N2O, CO2 and CH4 per season and year, with uncertainty, at points with management
fields (KG-FGNN, ``docs/ghg.md``)."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsField,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant

from ..styling import graduated, set_aliases, style_output
from .inputs import ModelInputsAlgorithm

#: The point fields the GHG model reads, per driver, under the names it accepts (case-insensitive), as
#: documented in docs/ghg.md (``soilcarbon_core.ghg.prediction.FIELD_ALIASES``). Only ``n_rate`` is
#: required; a missing other one takes its documented default.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "n_rate": ("n_rate", "n_input", "n.input", "nrate", "n_kg_ha", "nitrogen"),
    "fertiliser": ("fertiliser", "fertilizer", "fertiliser_type", "fertilizer_type", "fert_type"),
    "crop": ("crop",),
    "planting_date": ("planting_date", "sowing_date", "planting"),
    "harvest_date": ("harvest_date", "harvest"),
    "irrigated": ("irrigated", "irrigation"),
    "flooded": ("flooded", "paddy"),
    "soc": ("soc", "soc_pct", "carbon"),
    "clay": ("clay",),
    "sand": ("sand",),
    "ph": ("ph", "ph_h2o"),
    "bulk_density": ("bulk_density", "bd"),
    "mat": ("mat",),
    "map": ("map",),
}
SOC_UNITS = ("%", "g/kg")
#: The worker's text fields; every other field it returns is a number.
TEXT_FIELDS = ("soc_source", "defaults_used")
#: The GeoPackage layer the worker writes.
LAYER = "ghg_fluxes"
RAMP = "YlOrRd"


def field_units(fields: list[str], units: dict[str, str]) -> dict[str, str]:
    """Each flux field's unit: ``n2o_*``, ``co2_*``, ``ch4_*`` and ``co2e_*`` by the worker's ``units``
    (without the notes in brackets, which the log shows)."""
    short = {gas: unit.split(" (")[0] for gas, unit in units.items()}
    return {name: short[name.split("_")[0]] for name in fields if name.split("_")[0] in short}


class PredictGHGAlgorithm(ModelInputsAlgorithm):
    OUTPUT_POINTS = "OUTPUT_POINTS"
    WEATHER = "WEATHER"
    SOC_FIELD = "SOC_FIELD"
    SOC_SD_FIELD = "SOC_SD_FIELD"
    SOC_UNIT = "SOC_UNIT"
    SAMPLES = "SAMPLES"
    SEED = "SEED"
    POINTS = "POINTS"
    POINTS_WITH_DEFAULTS = "POINTS_WITH_DEFAULTS"

    def name(self) -> str:
        return "predictghg"

    def displayName(self) -> str:
        return self.tr("Predict GHG fluxes")

    def shortHelpString(self) -> str:
        return self.tr(
            "Predicts soil N2O, CO2 (heterotrophic respiration) and CH4 fluxes over the growing season and "
            "the year at each point, with uncertainty, from its management, soil and climate (KG-FGNN: a "
            "graph network over the agricultural variables, pre-trained on a process simulator and "
            "fine-tuned on field measurements; empty model: the model shipped with the core).\n\n"
            "Point fields, matched by name in any case:\n"
            "- n_rate (or n_input, nitrogen): N applied, kg N/ha per year (0 when unfertilised); required;\n"
            "- fertiliser: urea, ammonium, nitrate, ammonium_nitrate, uan, manure, urea_ammonium, "
            "ammonium_manure, urea_manure, or the codes U, A, N, AN, M, UA, AM, UM, UAN;\n"
            "- crop: maize, wheat, rice, soybean, vegetables, grassland;\n"
            "- planting_date, harvest_date (YYYY-MM-DD); irrigated, flooded (0 or 1);\n"
            "- soc (%), clay, sand (%), ph, bulk_density (g/cm3); mat (°C), map (mm/yr) without a weather "
            "file.\n"
            "A missing field takes a documented default (unknown, or 0 for irrigated; flooded is 1 for "
            "rice), flagged per point in defaults_used; unknown values widen the uncertainty. A negative or "
            "empty N rate, an unknown fertiliser or crop, a date that is not a date or a value outside a "
            "driver's plausible range is an error naming the field and the rows (row n is the n-th input "
            "feature).\n\n"
            "Weather: a daily CSV (date, precipitation mm, Tmax, Tmin °C) gives every point its climate; "
            "the points' latitudes set the evapotranspiration.\n\n"
            "SOC from a previous 'Predict SOC at points': choose its mean and sd fields (pred_mean, "
            "pred_sd_total) and their unit (a concentration, % or g/kg; not a stock in t/ha): SOC is then "
            "sampled from that distribution, so its uncertainty reaches the fluxes.\n\n"
            "Outputs, per gas and period (season, annual): mean, sd, p05, p95 in kg N2O-N/ha, kg CO2-C/ha "
            "and kg CH4-C/ha; co2e_* in kg CO2-eq/ha (GWP100, IPCC AR6: N2O 273, CH4 27; heterotrophic CO2 "
            "is not added, it returns carbon that plants fixed); in_<driver> (the value used), soc_source, "
            "soc_sd_used (%) and defaults_used. The table holds the points' attributes then the fluxes; "
            "the point layer holds the same, coloured by the annual CO2-equivalent.\n\n"
            "Example (command line):\n"
            "qgis_process run soilcarbon:predictghg -- INPUT=fields.gpkg WEATHER=weather.csv "
            "OUTPUT=fluxes.gpkg OUTPUT_POINTS=flux_points.gpkg"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_points_input()
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL,
                self.tr("GHG model (.zip; empty: the model shipped with the core)"),
                fileFilter=self.tr("Soil carbon models (*.zip)"),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.WEATHER,
                self.tr("Daily weather (CSV: date, precipitation, Tmax, Tmin)"),
                fileFilter=self.tr("CSV files (*.csv)"),
                optional=True,
            )
        )
        for name, description in (
            (self.SOC_FIELD, self.tr("SOC field (e.g. pred_mean of 'Predict SOC at points')")),
            (self.SOC_SD_FIELD, self.tr("SOC sd field (e.g. pred_sd_total)")),
        ):
            self.addParameter(
                QgsProcessingParameterField(
                    name,
                    description,
                    parentLayerParameterName=self.INPUT,
                    type=QgsProcessingParameterField.Numeric,
                    optional=True,
                )
            )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.SOC_UNIT, self.tr("Unit of the SOC fields"), list(SOC_UNITS), defaultValue=0
            )
        )
        self.add_advanced(
            QgsProcessingParameterNumber(
                self.SAMPLES,
                self.tr("Predictive samples per point"),
                QgsProcessingParameterNumber.Integer,
                defaultValue=256,
                minValue=16,
            ),
            QgsProcessingParameterNumber(
                self.SEED, self.tr("Random seed"), QgsProcessingParameterNumber.Integer, defaultValue=0
            ),
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, self.tr("GHG flux table"), QgsProcessing.TypeVector
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT_POINTS, self.tr("GHG fluxes at points"), QgsProcessing.TypeVectorPoint
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.POINTS, self.tr("Points predicted")))
        self.addOutput(
            QgsProcessingOutputNumber(self.POINTS_WITH_DEFAULTS, self.tr("Points with defaulted drivers"))
        )

    def ghg_model(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """MODEL when given (checked to be a GHG model), else None: the worker's shipped model."""
        if not self.parameterAsFile(parameters, self.MODEL, context):
            return None
        path, summary = self.model_summary(parameters, context)
        if summary.kind != "ghg-kgfgnn":
            raise QgsProcessingException(
                self.tr(
                    "'{0}' is a {1} model, not a GHG flux model. Leave 'GHG model' empty for the shipped "
                    "model, or give a KG-FGNN GHG model."
                ).format(path, summary.kind or "different")
            )
        return path

    def management_fields(
        self, source: QgsProcessingFeatureSource, label: str, feedback: QgsProcessingFeedback
    ) -> list[str]:
        """The points' fields the model reads (logged by driver); an error when there is no N rate."""
        by_name = {name.lower(): name for name in source.fields().names()}
        found = {
            driver: [by_name[alias] for alias in aliases if alias in by_name]
            for driver, aliases in FIELD_ALIASES.items()
        }
        if not found["n_rate"]:
            raise QgsProcessingException(
                self.tr(
                    "The points layer '{0}' has no N rate field (looked for {1}). Add a field 'n_rate' with "
                    "the N applied in kg N/ha per year (0 for unfertilised plots); fertiliser, crop, dates "
                    "and soil fields are optional."
                ).format(label, ", ".join(FIELD_ALIASES["n_rate"]))
            )
        feedback.pushInfo(
            self.tr("Driver fields read: {0}.").format(
                ", ".join(f"{driver} ← {names[0]}" for driver, names in found.items() if names)
            )
        )
        missing = [driver for driver, names in found.items() if not names]
        if missing:
            feedback.pushInfo(self.tr("No field for (defaults used): {0}.").format(", ".join(missing)))
        return [name for names in found.values() for name in names]

    def soc_fields(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[str | None, str | None]:
        """SOC_FIELD and SOC_SD_FIELD (None when empty); an sd needs its mean."""
        soc = self.parameterAsString(parameters, self.SOC_FIELD, context) or None
        sd = self.parameterAsString(parameters, self.SOC_SD_FIELD, context) or None
        if sd and not soc:
            raise QgsProcessingException(
                self.tr("An SOC sd field ('{0}') needs the SOC field it belongs to (SOC_FIELD).").format(sd)
            )
        return soc, sd

    def processAlgorithm(self, parameters, context, feedback):
        source = self.points_source(parameters, context)
        label = source.sourceName()
        model = self.ghg_model(parameters, context)
        soc_field, soc_sd_field = self.soc_fields(parameters, context)
        fields = self.management_fields(source, label, feedback)
        soc_unit = SOC_UNITS[self.parameterAsEnum(parameters, self.SOC_UNIT, context)]
        points = self.export_points(
            source, context, feedback, label, [*fields, *(name for name in (soc_field, soc_sd_field) if name)]
        )
        fluxes_path = os.path.join(os.path.dirname(points), "fluxes.gpkg")
        result = self.run_worker(
            "ghg_predict",
            {
                "points": {"path": points, "layer": "points"},
                "model": model,
                "weather": self.parameterAsFile(parameters, self.WEATHER, context) or None,
                "soc_field": soc_field,
                "soc_sd_field": soc_sd_field,
                "soc_unit": soc_unit,
                "samples": self.parameterAsInt(parameters, self.SAMPLES, context),
                "seed": self.parameterAsInt(parameters, self.SEED, context),
                "output": fluxes_path,
            },
            feedback,
            outputs=[fluxes_path],
            progress_range=(5.0, 85.0),
        )
        for note in result["notes"]:
            feedback.pushInfo(note)
        feedback.pushInfo(self.tr("CO2-equivalent: {0}.").format(result["co2e"]))
        feedback.pushInfo(
            self.tr("Predicted {0} point(s) from {1} predictive samples each.").format(
                result["points"], result["samples"]
            )
        )
        if result["points_with_defaults"]:
            feedback.pushWarning(
                self.tr(
                    "{0} of {1} point(s) lack some driver and use its default (see the field "
                    "defaults_used); their uncertainty is wider."
                ).format(result["points_with_defaults"], result["points"])
            )
        worker_outputs = {
            **result,
            "layer": LAYER,
            "fields": [name for name in result["fields"] if name not in TEXT_FIELDS],
        }
        text_fields = tuple(QgsField(name, QVariant.String) for name in TEXT_FIELDS)
        points_id = self.write_joined(
            parameters,
            context,
            feedback,
            source,
            worker_outputs,
            text_fields,
            output=self.OUTPUT_POINTS,
            progress_range=(85.0, 92.5),
        )
        try:
            table_id = self.write_joined(
                parameters,
                context,
                feedback,
                source,
                worker_outputs,
                text_fields,
                geometry=False,
                progress_range=(92.5, 100.0),
            )
        except QgsProcessingException:
            self.remove_output(points_id)  # both outputs or neither
            raise
        units = field_units(result["fields"], result["units"])
        shown = "co2e_annual_mean" if "co2e_annual_mean" in units else "n2o_annual_mean"

        def style_points(layer: QgsVectorLayer) -> None:
            set_aliases(layer, units)
            graduated(layer, shown, RAMP, units[shown])

        style_output(context, points_id, style_points, self.tr("GHG fluxes ({0})").format(shown))
        style_output(context, table_id, lambda layer: set_aliases(layer, units), self.tr("GHG flux table"))
        return {
            self.OUTPUT: table_id,
            self.OUTPUT_POINTS: points_id,
            self.POINTS: result["points"],
            self.POINTS_WITH_DEFAULTS: result["points_with_defaults"],
        }
