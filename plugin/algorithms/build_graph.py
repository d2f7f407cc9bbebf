"""Build soil graph: the model's three-relation graph (and optionally the edges of query points) as lines."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsLineSymbol,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingUtils,
    QgsProperty,
    QgsRendererCategory,
    QgsSymbolLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant

from ..model_manifest import ModelSummary
from ..styling import style_output
from .base import JOIN_FIELD
from .inputs import ModelInputsAlgorithm

#: The relations of the soil graph and the colour of their edges (distinct, legible over imagery).
RELATION_COLOURS = {"spatial": "91,127,166", "spectral": "58,154,74", "elevation": "154,106,58"}
#: The field added with query points: the input feature the query edge ends at (NULL for reference edges).
QUERY_FID = "query_fid"
#: Layer and the value of ``target_kind`` of the worker's GeoPackage that mark an edge to a query point.
QUERY_KIND = "query"


def style_graph(layer: QgsVectorLayer) -> None:
    """Edges coloured by ``relation``; edges to query points dashed."""
    dashed = QgsProperty.fromExpression(
        f"CASE WHEN \"target_kind\" = '{QUERY_KIND}' THEN 'dash' ELSE 'solid' END"
    )
    categories = []
    for relation, colour in RELATION_COLOURS.items():
        symbol = QgsLineSymbol.createSimple({"line_color": f"{colour},200", "line_width": "0.35"})
        symbol.symbolLayer(0).setDataDefinedProperty(QgsSymbolLayer.PropertyStrokeStyle, dashed)
        categories.append(QgsRendererCategory(relation, symbol, relation))
    layer.setRenderer(QgsCategorizedSymbolRenderer("relation", categories))
    layer.setTitle("Soil graph: colour by relation; dashed: edges to query points")
    layer.triggerRepaint()


class BuildGraphAlgorithm(ModelInputsAlgorithm):
    SPATIAL_EDGES = "SPATIAL_EDGES"
    SPECTRAL_EDGES = "SPECTRAL_EDGES"
    ELEVATION_EDGES = "ELEVATION_EDGES"
    QUERY_EDGES = "QUERY_EDGES"
    #: (relation, output) for the edge counts among samples.
    COUNT_OUTPUTS = (("spatial", SPATIAL_EDGES), ("spectral", SPECTRAL_EDGES), ("elevation", ELEVATION_EDGES))

    def name(self) -> str:
        return "buildgraph"

    def displayName(self) -> str:
        return self.tr("Build soil graph")

    def shortHelpString(self) -> str:
        return self.tr(
            "Draws an SOC model's soil graph as lines, to see which samples inform each other: one line "
            "per edge between two training samples, for each relation the model's network uses "
            "(spatial: near in space; spectral: alike in the covariates; elevation: alike in elevation "
            "and slope). Each edge is written once.\n\n"
            "With query points, the edges that attach each point to its reference samples follow, as "
            "prediction attaches them (give the rasters, chips and date the model needs, as for "
            "'Predict SOC at points'); points outside a raster or on its nodata get none. Their field "
            "query_fid is the input feature id (NULL on edges among samples). Use 'Selected features "
            "only' to attach a few points.\n\n"
            "Fields: relation; source and target (0-based sample index in the model's reference order, "
            "or the query point's row); target_kind (reference or query); length_m (ground distance in "
            "metres); the relations' attributes distance_m, spectral_distance, elevation_difference_m, "
            "slope_difference (NULL where a relation has none). The lines are in the model's CRS, "
            "coloured by relation (spatial grey-blue, spectral green, elevation brown); edges to query "
            "points are dashed. The outputs SPATIAL_EDGES, SPECTRAL_EDGES and ELEVATION_EDGES count the "
            "edges among samples (0 for a relation the model does not use, with the reason in the log); "
            "QUERY_EDGES counts the edges to query points.\n\n"
            "Example (command line):\n"
            "qgis_process run soilcarbon:buildgraph -- MODEL=soc_model.zip OUTPUT=soil_graph.gpkg"
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add_model_input()
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.INPUT,
                self.tr("Query points to attach (optional)"),
                [QgsProcessing.TypeVectorPoint],
                optional=True,
            )
        )
        self.add_raster_inputs(self.tr("Covariate rasters for the query points (named as at training)"))
        self.add_chip_inputs(advanced=True)
        self.add_date_inputs()
        self.add_method_input()
        self.add_device_input()
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, self.tr("Soil graph"), QgsProcessing.TypeVectorLine
            )
        )
        for relation, name in self.COUNT_OUTPUTS:
            self.addOutput(
                QgsProcessingOutputNumber(name, self.tr("Edges among samples: {0}").format(relation))
            )
        self.addOutput(QgsProcessingOutputNumber(self.QUERY_EDGES, self.tr("Edges to query points")))

    def query_points(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        model: str,
        summary: ModelSummary,
    ) -> dict[str, Any] | None:
        """The worker's query parameters (exported points, rasters, chips, method, date), or None
        without INPUT."""
        source = self.parameterAsSource(parameters, self.INPUT, context)
        if source is None:
            if parameters.get(self.INPUT):
                raise QgsProcessingException(self.invalidSourceError(parameters, self.INPUT))
            return None
        rasters, chips = self.model_rasters(parameters, context, model, summary)
        return {
            "points": self.export_query_points(parameters, context, feedback, source, model, summary),
            "rasters": rasters,
            "chips": chips,
            "method": self.method(parameters, context),
            "date": self.date(parameters, context),
        }

    def processAlgorithm(self, parameters, context, feedback):
        model, summary = self.soc_model(parameters, context)
        self.log_model(summary, feedback)
        query = self.query_points(parameters, context, feedback, model, summary)
        output = QgsProcessingUtils.generateTempFilename("graph.gpkg")
        result = self.run_worker(
            "build_graph",
            {"model": model, **(query or {}), "device": self.device(parameters, context), "output": output},
            feedback,
            outputs=[output],
            progress_range=(5.0, 80.0),
        )
        for relation, reason in result["skipped"].items():
            feedback.pushWarning(self.tr("No {0} edges: {1}.").format(relation, reason))
        counts = result["relations"]
        feedback.pushInfo(
            self.tr("{0} samples; edges among them: {1}.").format(
                result["n_reference"], ", ".join(f"{name} {n}" for name, n in counts.items()) or "none"
            )
        )
        if query:
            feedback.pushInfo(
                self.tr("{0} of {1} query point(s) attached by {2} edge(s).").format(
                    result["n_query_attached"], result["n_query"], result["n_query_edges"]
                )
            )
        points = query["points"]["path"] if query else None
        dest_id = self.write_edges(parameters, context, feedback, result, points)
        style_output(context, dest_id, style_graph, self.tr("Soil graph"))
        return {
            self.OUTPUT: dest_id,
            **{name: counts.get(relation, 0) for relation, name in self.COUNT_OUTPUTS},
            self.QUERY_EDGES: result["n_query_edges"],
        }

    def write_edges(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        result: dict[str, Any],
        points: str | None,
    ) -> str:
        """Copy the worker's edges to OUTPUT, with ``query_fid`` (from the exported points' join key, by
        row) when there are query points. Progress 80-100. Returns the sink's destination id."""
        edges = QgsVectorLayer(f"{result['output']}|layername={result['layer']}", "worker graph", "ogr")
        if not edges.isValid():
            raise QgsProcessingException(
                self.tr("The worker's graph cannot be read: {0}").format(result["output"])
            )
        fields = QgsFields()
        for name in result["fields"]:
            fields.append(edges.fields().field(name))
        keys = self.point_keys(points) if points else None
        if keys is not None:
            fields.append(QgsField(QUERY_FID, QVariant.LongLong))
        sink, dest_id = self.parameterAsSink(
            parameters, self.OUTPUT, context, fields, edges.wkbType(), edges.crs()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        total = max(edges.featureCount(), 1)
        for index, feature in enumerate(edges.getFeatures()):
            if feedback.isCanceled():
                del sink
                self.remove_output(dest_id)
                raise QgsProcessingException(self.tr("Cancelled; no output was written."))
            out = QgsFeature(fields)
            out.setGeometry(feature.geometry())
            values = [feature[name] for name in result["fields"]]
            if keys is not None:
                values.append(keys[feature["target"]] if feature["target_kind"] == QUERY_KIND else None)
            out.setAttributes(values)
            sink.addFeature(out, QgsFeatureSink.FastInsert)
            if index % 1000 == 0:
                feedback.setProgress(80.0 + 20.0 * index / total)
        return dest_id

    @staticmethod
    def point_keys(points: str) -> list[int]:
        """The input feature id of each exported point, by row (the worker's ``target`` of query edges)."""
        layer = QgsVectorLayer(f"{points}|layername=points", "points", "ogr")
        return [feature[JOIN_FIELD] for feature in layer.getFeatures()]
