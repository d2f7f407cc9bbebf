"""Plan a sampling campaign: the N new sites that most reduce the SOC model's epistemic uncertainty."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsFeature,
    QgsFeatureRequest,
    QgsFeatureSink,
    QgsFields,
    QgsPalLayerSettings,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsProperty,
    QgsSimpleMarkerSymbolLayerBase,
    QgsSymbolLayer,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)

from ..model_manifest import ModelSummary
from ..styling import graduated, style_output
from .base import JOIN_FIELD
from .inputs import ModelInputsAlgorithm

#: The fields of the worker's ranked sites (``soilcarbon_core.campaign.PLAN_FIELDS``), in order.
PLAN_FIELDS = (
    "rank",
    "expected_reduction",
    "reduction_pct",
    "epistemic_sd",
    "pred_mean",
    "nearest_sample_m",
    "reason",
)
#: The planner settings the algorithm exposes as advanced parameters: parameter -> (the field of
#: ``soilcarbon_core.campaign.PlannerSettings``, its default there, the least value, the label).
PLANNER_PARAMETERS = {
    "MIN_SPACING": ("min_spacing_m", 0.0, 0.0, "Minimum spacing between sites and from samples (m)"),
    "SPATIAL_RANGE": ("spatial_range_m", 0.0, 0.0, "Spatial range of the uncertainty (m; 0 = automatic)"),
    "FEATURE_RANGE": ("feature_range", 0.5, 0.01, "Feature range (standard deviations of the inputs)"),
    "NOISE_RATIO": (
        "noise_ratio",
        0.05,
        0.0,
        "Noise of a new sample, as a share of the model's aleatoric variance",
    ),
    "VARIANCE_POWER": (
        "variance_power",
        1.0,
        0.0,
        "Sharpening of the epistemic variance's contrasts (1 = as the ensemble has them)",
    ),
}
#: The core's defaults as the plugin assumes them (checked against the core by the tests).
PLANNER_DEFAULTS = {field: default for field, default, _, _ in PLANNER_PARAMETERS.values()}
RAMP = "Reds"
#: Star diameters (mm) of the last and the first site.
STAR_MM = (4.0, 7.0)


def style_sites(layer: QgsVectorLayer) -> None:
    """Stars coloured by reduction_pct, the first sites largest, labelled with their rank."""
    graduated(layer, "reduction_pct", RAMP, "%")
    renderer = layer.renderer()
    last = max(int(layer.maximumValue(layer.fields().lookupField("rank")) or 1), 2)
    small, large = STAR_MM
    size = QgsProperty.fromExpression(f'scale_linear("rank", 1, {last}, {large}, {small})')
    star = renderer.sourceSymbol().clone()
    star.symbolLayer(0).setShape(QgsSimpleMarkerSymbolLayerBase.Star)
    star.symbolLayer(0).setDataDefinedProperty(QgsSymbolLayer.PropertySize, size)
    renderer.updateSymbols(star)  # every class: the star, in its own colour
    labels = QgsPalLayerSettings()
    labels.fieldName = "rank"
    labels.placement = QgsPalLayerSettings.OverPoint
    text = QgsTextFormat()
    text.setSize(9)
    halo = text.buffer()
    halo.setEnabled(True)
    text.setBuffer(halo)
    labels.setFormat(text)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(labels))
    layer.setLabelsEnabled(True)
    layer.setTitle("Sampling sites: rank (label, star size), reduction_pct (colour)")
    layer.triggerRepaint()


class PlanCampaignAlgorithm(ModelInputsAlgorithm):
    BUDGET = "BUDGET"
    CANDIDATES = "CANDIDATES"
    MASK = "MASK"
    SITES = "SITES"
    AREA_SD_BEFORE = "AREA_SD_BEFORE"
    AREA_SD_AFTER = "AREA_SD_AFTER"
    RASTER_PARAMETERS = (*ModelInputsAlgorithm.RASTER_PARAMETERS, ModelInputsAlgorithm.TEMPLATE, MASK)

    def name(self) -> str:
        return "plancampaign"

    def displayName(self) -> str:
        return self.tr("Plan sampling campaign")

    def shortHelpString(self) -> str:
        return self.tr(
            "Ranks N new sampling sites where a measurement would most reduce the SOC model's epistemic "
            "uncertainty (the ensemble's disagreement) over the area.\n\n"
            "Candidates: a point layer of places that can be sampled, or the cells of a grid (a template "
            "raster, or an extent with a cell size and CRS; at most 3,000 random cells); a mask raster "
            "marks inaccessible cells (non-zero: not sampled). The area whose uncertainty should fall is "
            "the candidates themselves.\n\n"
            "The epistemic error is treated as a Gaussian field correlated over ground distance (range: "
            "'Spatial range', 0 = the median distance from the area to the nearest existing sample) and "
            "over similarity of the model's inputs ('Feature range', in standard deviations). Sites are "
            "chosen one at a time by the largest expected reduction of the area's mean epistemic "
            "variance, each choice lowering the uncertainty around it, so the next site goes where "
            "uncertainty remains; a noisy place (large aleatoric sd) is worth less. 'Minimum spacing' "
            "(metres) keeps sites apart from each other and from the existing samples.\n\n"
            "What to expect: sample in rounds. Measure the first ranks (for example a quarter of the "
            "budget), retrain the model with them and plan the next round with the new model. So used, "
            "the planner gave a lower mean map error than random sampling and cLHS at 25, 50 and 100 "
            "sites on two of three held-out regions in the Africa campaign experiments and tied random "
            "sampling on the third; the gains are modest (about 1 % of the error on average) and come "
            "mostly from the places the model knows least. One plan of 100 sites did worse than random "
            "sampling (docs/maps.md).\n\n"
            "Output, one point per site: rank (1 = first), expected_reduction (of the area's mean "
            "epistemic variance, target unit squared), reduction_pct (% of that variance before the "
            "campaign), epistemic_sd and pred_mean (target unit), nearest_sample_m (metres to the nearest "
            "existing sample) and reason (in words), after the candidate's own attributes. Stars labelled "
            "by rank, coloured by reduction_pct. The log and the outputs give the area's epistemic sd "
            "(root mean square) before and after the campaign.\n\n"
            "Give the rasters the model was trained with (same names), and the same imagery chip rasters "
            "if it uses chips.\n\n"
            "Example (command line):\n"
            "qgis_process run soilcarbon:plancampaign -- MODEL=soc_model.zip BUDGET=20 TEMPLATE=dem.tif "
            "MASK=roads_water.tif RASTERS=dem.tif RASTERS=slope.tif MIN_SPACING=250 OUTPUT=campaign.gpkg"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_model_input()
        self.addParameter(
            QgsProcessingParameterNumber(
                self.BUDGET,
                self.tr("Number of new sites"),
                QgsProcessingParameterNumber.Integer,
                defaultValue=10,
                minValue=1,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.CANDIDATES,
                self.tr("Candidate sites (points; or a grid below)"),
                [QgsProcessing.TypeVectorPoint],
                optional=True,
            )
        )
        self.add_grid_inputs(self.tr("Or: template raster (its cells are the candidates)"))
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                self.MASK,
                self.tr("Inaccessible cells (raster, non-zero = not sampled; grid only)"),
                optional=True,
            )
        )
        self.add_raster_inputs()
        self.add_chip_inputs(advanced=True)
        self.add_date_inputs(with_field=False)
        self.add_device_input()
        self.add_advanced(
            *(
                QgsProcessingParameterNumber(
                    name,
                    self.tr(label),
                    QgsProcessingParameterNumber.Double,
                    defaultValue=default,
                    minValue=least,
                )
                for name, (_, default, least, label) in PLANNER_PARAMETERS.items()
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, self.tr("Sampling sites (ranked)"), QgsProcessing.TypeVectorPoint
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.SITES, self.tr("Sites planned")))
        self.addOutput(
            QgsProcessingOutputNumber(self.AREA_SD_BEFORE, self.tr("Area epistemic sd before (RMS)"))
        )
        self.addOutput(
            QgsProcessingOutputNumber(self.AREA_SD_AFTER, self.tr("Area epistemic sd after (RMS)"))
        )

    def checkParameterValues(self, parameters, context):
        # Before Processing's generic check, which would only say "Incorrect parameter value for BUDGET".
        budget = self.parameterAsInt(parameters, self.BUDGET, context) if self.BUDGET in parameters else 1
        if budget < 1:
            return False, self.tr("The budget is {0} sites; plan at least one site (BUDGET >= 1).").format(
                budget
            )
        return super().checkParameterValues(parameters, context)

    def candidates(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        source: QgsProcessingFeatureSource | None,
        summary: ModelSummary,
        model: str,
    ) -> dict[str, Any]:
        """The worker's ``points`` (the CANDIDATES, checked and exported) or ``grid`` and ``mask``."""
        has_grid = bool(parameters.get(self.TEMPLATE) or parameters.get(self.EXTENT))
        mask = self.parameterAsRasterLayer(parameters, self.MASK, context)
        if source is not None and has_grid:
            raise QgsProcessingException(
                self.tr(
                    "Give the candidates either as points (CANDIDATES) or as a grid (TEMPLATE, or EXTENT "
                    "with RESOLUTION), not both."
                )
            )
        if source is None:
            if not has_grid:
                raise QgsProcessingException(
                    self.tr(
                        "Give the candidate sites: a point layer (CANDIDATES), a template raster (TEMPLATE) "
                        "or an extent (EXTENT) with a cell size (RESOLUTION)."
                    )
                )
            if summary.fields:
                raise QgsProcessingException(
                    self.tr(
                        "The model reads the point field(s) {0}, which grid cells do not have. Give "
                        "candidate points with those fields (CANDIDATES)."
                    ).format(", ".join(summary.fields))
                )
            return {
                "grid": self.grid(parameters, context),
                "mask": self.raster_path(mask) if mask is not None else None,
            }
        label = source.sourceName()
        if mask is not None:
            raise QgsProcessingException(
                self.tr(
                    "The mask applies to a grid of candidates. With candidate points ('{0}'), leave MASK "
                    "empty and remove the inaccessible points from the layer (e.g. Extract by location)."
                ).format(label)
            )
        budget = self.parameterAsInt(parameters, self.BUDGET, context)
        if budget > source.featureCount():
            raise QgsProcessingException(
                self.tr(
                    "The budget ({0} sites) exceeds the {1} candidate point(s) of '{2}'. Lower the budget "
                    "or add candidates."
                ).format(budget, source.featureCount(), label)
            )
        clashes = [name for name in PLAN_FIELDS if source.fields().lookupField(name) >= 0]
        if clashes:
            raise QgsProcessingException(
                self.tr(
                    "The candidate points '{0}' already have the field(s) {1}, which the plan adds. Rename "
                    "or delete them."
                ).format(label, ", ".join(clashes))
            )
        fields = self.check_fields(summary, source, label, model)
        path = self.export_points(source, context, feedback, label, fields)
        return {"points": {"path": path, "layer": "points"}}

    def processAlgorithm(self, parameters, context, feedback):
        model, summary = self.soc_model(parameters, context)
        self.log_model(summary, feedback)
        rasters, chips = self.model_rasters(parameters, context, model, summary)
        source = self.parameterAsSource(parameters, self.CANDIDATES, context)
        where = self.candidates(parameters, context, feedback, source, summary, model)
        plan_path = QgsProcessingUtils.generateTempFilename("campaign.gpkg")
        result = self.run_worker(
            "plan_campaign",
            {
                "model": model,
                "budget": self.parameterAsInt(parameters, self.BUDGET, context),
                **where,
                "rasters": rasters,
                "chips": chips,
                "date": self.date(parameters, context),
                "device": self.device(parameters, context),
                "settings": {
                    field: self.parameterAsDouble(parameters, name, context)
                    for name, (field, *_) in PLANNER_PARAMETERS.items()
                },
                "output": plan_path,
            },
            feedback,
            outputs=[plan_path],
            progress_range=(5.0, 90.0),
        )
        unit = result["unit"]
        feedback.pushInfo(
            self.tr(
                "Planned {0} site(s) among {1} candidates on {2}: the area's epistemic sd (root mean "
                "square) falls from {3:.4g} to {4:.4g} {5} (spatial range {6:.0f} m, feature range {7:g})."
            ).format(
                result["sites"],
                result["candidates"],
                result["device"],
                result["area_epistemic_sd_before"],
                result["area_epistemic_sd_after"],
                unit,
                result["spatial_range_m"],
                result["feature_range"],
            )
        )
        dest_id = self.write_sites(parameters, context, feedback, result, source)
        style_output(context, dest_id, style_sites, self.tr("Sampling sites ({0})").format(result["target"]))
        return {
            self.OUTPUT: dest_id,
            self.SITES: result["sites"],
            self.AREA_SD_BEFORE: result["area_epistemic_sd_before"],
            self.AREA_SD_AFTER: result["area_epistemic_sd_after"],
        }

    def write_sites(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        result: dict[str, Any],
        source: QgsProcessingFeatureSource | None,
    ) -> str:
        """OUTPUT: the worker's ranked sites, after the candidate points' own attributes when given."""
        sites = QgsVectorLayer(f"{result['output']}|layername={result['layer']}", "campaign", "ogr")
        if not sites.isValid():
            raise QgsProcessingException(
                self.tr("The worker's output cannot be read: {0}").format(result["output"])
            )
        fields = QgsFields(source.fields()) if source is not None else QgsFields()
        for name in PLAN_FIELDS:
            fields.append(sites.fields().field(name))
        features = sorted(sites.getFeatures(), key=lambda feature: feature["rank"])
        candidates = {}
        if source is not None:
            ids = [feature[JOIN_FIELD] for feature in features]
            candidates = {
                feature.id(): feature.attributes()
                for feature in source.getFeatures(QgsFeatureRequest().setFilterFids(ids))
            }
        sink, dest_id = self.parameterAsSink(
            parameters, self.OUTPUT, context, fields, sites.wkbType(), sites.crs()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        for feature in features:
            out = QgsFeature(fields)
            out.setGeometry(feature.geometry())
            own = candidates[feature[JOIN_FIELD]] if source is not None else []
            out.setAttributes(own + [feature[name] for name in PLAN_FIELDS])
            sink.addFeature(out, QgsFeatureSink.FastInsert)
        feedback.setProgress(100.0)
        return dest_id
