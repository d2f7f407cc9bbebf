"""Styles of the plugin's outputs, applied to layers and saved as ``.qml`` beside file outputs.

Every algorithm styles its outputs twice, so that they look right however they are run:

* a ``.qml`` written beside each file output (``<output stem>.qml``, the file QGIS loads as a layer's
  default style), so batch runs, models and ``qgis_process`` outputs opened later are styled;
* a layer post-processor for the layers Processing loads on completion (temporary outputs included).

Ramps are perceptual (Viridis for values, Magma for uncertainty, never the same ramp for both) and the
legends carry the target's unit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qgis.core import (
    QgsBasicNumericFormat,
    QgsClassificationQuantile,
    QgsColorRampLegendNodeSettings,
    QgsColorRampShader,
    QgsGraduatedSymbolRenderer,
    QgsMapLayer,
    QgsMarkerSymbol,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsProperty,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
    QgsSymbolLayer,
    QgsVectorLayer,
)

VALUE_RAMP = "Viridis"
UNCERTAINTY_RAMP = "Magma"
CLASSES = 5
#: Marker diameters (mm) for the smallest and the largest total sd of a point layer.
SIZE_RANGE_MM = (1.6, 5.0)

Style = Callable[[QgsMapLayer], None]


def unit_suffix(unit: str) -> str:
    return f" {unit}" if unit else ""


def graduated(layer: QgsVectorLayer, field: str, ramp: str, unit: str, classes: int = CLASSES) -> None:
    """Quantile classes of ``field`` coloured with ``ramp``, legend entries 'low – high unit'."""
    renderer = QgsGraduatedSymbolRenderer(field)
    method = QgsClassificationQuantile()
    method.setLabelFormat("%1 – %2" + unit_suffix(unit))
    method.setLabelPrecision(2)
    renderer.setClassificationMethod(method)
    symbol = QgsMarkerSymbol.createSimple({"name": "circle", "outline_color": "35,35,35,180"})
    renderer.setSourceSymbol(symbol)
    renderer.setSourceColorRamp(QgsStyle.defaultStyle().colorRamp(ramp))
    renderer.updateClasses(layer, classes)
    layer.setRenderer(renderer)


def style_soc_points(
    layer: QgsVectorLayer, unit: str, mean: str = "pred_mean", sd: str = "pred_sd_total"
) -> None:
    """SOC mean in Viridis quantile classes; the marker grows with the total sd (the uncertainty)."""
    graduated(layer, mean, VALUE_RAMP, unit)
    index = layer.fields().lookupField(sd)
    low, high = (layer.minimumValue(index), layer.maximumValue(index)) if index >= 0 else (None, None)
    if low is not None and high is not None and high > low:
        small, large = SIZE_RANGE_MM
        size = QgsProperty.fromExpression(
            f'coalesce(scale_linear("{sd}", {low}, {high}, {small}, {large}), 1)'
        )
        renderer = layer.renderer()
        symbol = renderer.sourceSymbol().clone()
        symbol.symbolLayer(0).setDataDefinedProperty(QgsSymbolLayer.PropertySize, size)
        # ranges() returns copies: updateSymbols sets the size on every class and keeps their colours.
        renderer.updateSymbols(symbol)
        layer.setTitle(f"Colour: {mean}; marker size: {sd} ({low:.3g} to {high:.3g}{unit_suffix(unit)})")
    layer.triggerRepaint()


def style_band(layer: QgsRasterLayer, band: int, ramp: str, unit: str = "") -> None:
    """Band ``band`` as a continuous pseudocolour ramp between its minimum and maximum; the legend's
    colour bar reads 'value unit' with two decimals."""
    provider = layer.dataProvider()
    stats = provider.bandStatistics(band, QgsRasterBandStats.Min | QgsRasterBandStats.Max)
    low, high = stats.minimumValue, stats.maximumValue
    if not high > low:
        high = low + 1.0
    function = QgsColorRampShader(low, high, QgsStyle.defaultStyle().colorRamp(ramp))
    function.setColorRampType(QgsColorRampShader.Interpolated)
    function.classifyColorRamp(CLASSES, band, layer.extent(), provider)
    legend = QgsColorRampLegendNodeSettings()
    number_format = QgsBasicNumericFormat()
    number_format.setNumberDecimalPlaces(2)
    legend.setNumericFormat(number_format)
    legend.setSuffix(unit_suffix(unit))
    function.setLegendSettings(legend)
    shader = QgsRasterShader(low, high)
    shader.setRasterShaderFunction(function)
    renderer = QgsSingleBandPseudoColorRenderer(provider, band, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def band_number(layer: QgsRasterLayer, name: str) -> int:
    """The 1-based band whose description is ``name`` (GDAL band descriptions), else 1."""
    for band in range(1, layer.bandCount() + 1):
        if layer.dataProvider().generateBandName(band).endswith(name) or layer.bandName(band).endswith(name):
            return band
    return 1


def style_prediction_band(layer: QgsRasterLayer, name: str, unit: str) -> None:
    """A prediction raster shown by its band ``name``: the mean on Viridis, any sd on Magma."""
    ramp = UNCERTAINTY_RAMP if "_sd" in name else VALUE_RAMP
    style_band(layer, band_number(layer, name), ramp, unit)
    layer.setTitle(f"{name}{unit_suffix(unit)}")


def set_aliases(layer: QgsVectorLayer, units: dict[str, str]) -> None:
    """Field aliases 'field (unit)' so tables and forms show units."""
    for index, field in enumerate(layer.fields()):
        unit = units.get(field.name())
        if unit:
            layer.setFieldAlias(index, f"{field.name()} ({unit})")


def save_sidecar(layer: QgsMapLayer, destination: str) -> Path | None:
    """Write ``layer``'s style as the ``.qml`` QGIS loads with the file ``destination``.

    Returns the path, or None for outputs that are not files (memory layers, database tables)."""
    path = Path(destination.split("|")[0])
    if not path.suffix or not path.parent.is_dir():
        return None
    qml = path.with_suffix(".qml")
    _message, ok = layer.saveNamedStyle(str(qml))
    return qml if ok else None


#: Post-processors QGIS does not own: kept here until replaced, or styling applies only sometimes
#: (qgis/QGIS#47533). One per destination.
_POST_PROCESSORS: dict[str, QgsProcessingLayerPostProcessorInterface] = {}


class StyleOnLoad(QgsProcessingLayerPostProcessorInterface):
    """Applies a style (and a name) to an output layer Processing loads on completion."""

    def __init__(self, style: Style, name: str | None = None) -> None:
        super().__init__()
        self.style = style
        self.name = name

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext, feedback) -> None:
        if layer is None or not layer.isValid():
            return
        self.style(layer)
        if self.name:
            layer.setName(self.name)


def style_output(
    context: QgsProcessingContext,
    destination: str,
    style: Style,
    name: str | None = None,
    processor: StyleOnLoad | None = None,
) -> None:
    """Style the output ``destination``: a ``.qml`` beside a file output, and the layer loaded on
    completion (if it is loaded; by ``processor``, default a :class:`StyleOnLoad` of ``style``). Call
    from ``processAlgorithm`` once the output is complete."""
    layer = layer_of(destination, context)
    if layer is not None and layer.isValid():
        style(layer)
        save_sidecar(layer, destination)
    if context.willLoadLayerOnCompletion(destination):
        processor = processor or StyleOnLoad(style, name)
        _POST_PROCESSORS[destination] = processor
        context.layerToLoadOnCompletionDetails(destination).setPostProcessor(processor)


def layer_of(destination: str, context: QgsProcessingContext) -> QgsMapLayer | None:
    """The layer behind an output id: a temporary layer of the context or a file opened on its own."""
    from qgis.core import QgsProcessingUtils

    return QgsProcessingUtils.mapLayerFromString(destination, context, allowLoadingNewLayers=True)
