"""The scene of the QGIS screenshot: runs INSIDE the QGIS desktop (``qgis --code``), started by
``scripts/qgis_screenshot.py``, which passes the inputs in the environment: SOILCARBON_SCREENSHOT_POINTS,
_MAP, _MODEL (the demo outputs), _OUT (the PNG to write) and _SIZE (the window, WxH).

It loads the predicted points and the map (mean, total sd) styled with the plugin's own functions into
a layer-tree group (the points over the mean map; the sd map in the legend, unchecked), shows the
Processing toolbox with the plugin's provider expanded, waits until the canvas has rendered, grabs the
main window and quits QGIS. Whatever fails, QGIS exits (code 1, the reason on stderr); a watchdog ends
it if the scene stalls.
"""

import os
import sys
import time
import traceback
from collections.abc import Callable

from qgis.core import (
    QgsApplication,
    QgsMapLayer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QDockWidget
from qgis.utils import iface, plugins

#: Seconds the whole scene may take before QGIS is made to exit.
WATCHDOG_S = 120
#: The canvas must stay idle this long before the grab (legend and toolbox repaint too).
SETTLE_S = 2.0
GROUP = "Soil carbon results"
#: The points are coloured on the mean map's ramp: a lighter map lets them stand out.
MEAN_OPACITY = 0.6
PROVIDER = "Soil carbon"  #: the plugin's Processing provider, by its name


def log(message: str) -> None:
    print(f"qgis_screenshot_scene: {message}", file=sys.__stderr__, flush=True)


def finish(code: int) -> None:
    """Quit QGIS with ``code`` without any 'save the project?' question."""
    QgsProject.instance().setDirty(False)
    QgsApplication.exit(code)


def guarded(step: Callable[[], None]) -> Callable[[], None]:
    """Run ``step``; on any error log the traceback and quit QGIS with code 1."""

    def run() -> None:
        try:
            step()
        except Exception:  # noqa: BLE001 - every failure must end QGIS, with its reason
            log("failed:\n" + traceback.format_exc())
            finish(1)

    return run


def valid(layer: QgsMapLayer) -> QgsMapLayer:
    if not layer.isValid():
        raise RuntimeError(f"QGIS cannot open '{layer.source()}' as a layer.")
    return layer


def build_scene() -> None:
    from soilcarbon.model_manifest import model_summary  # the staged plugin folder is 'soilcarbon'
    from soilcarbon.styling import style_prediction_band, style_soc_points

    width, height = (int(v) for v in os.environ["SOILCARBON_SCREENSHOT_SIZE"].split("x"))
    window = iface.mainWindow()
    window.setGeometry(0, 0, width, height)

    unit = model_summary(os.environ["SOILCARBON_SCREENSHOT_MODEL"]).unit
    suffix = f" ({unit})" if unit else ""
    raster = os.environ["SOILCARBON_SCREENSHOT_MAP"]
    points = valid(QgsVectorLayer(os.environ["SOILCARBON_SCREENSHOT_POINTS"], f"SOC at the points{suffix}"))
    mean = valid(QgsRasterLayer(raster, f"SOC map: mean{suffix}"))
    total_sd = valid(QgsRasterLayer(raster, f"SOC map: total sd{suffix}"))
    style_soc_points(points, unit)
    style_prediction_band(mean, "pred_mean", unit)
    style_prediction_band(total_sd, "pred_sd_total", unit)

    project = QgsProject.instance()
    project.setCrs(mean.crs())
    group = project.layerTreeRoot().insertGroup(0, GROUP)
    for item in (points, mean, total_sd):
        project.addMapLayer(item, False)
        group.addLayer(item).setExpanded(True)
    group.findLayer(total_sd.id()).setItemVisibilityChecked(False)
    mean.setOpacity(MEAN_OPACITY)
    group.setExpanded(True)

    for name in ("Browser", "Browser2"):  # room for the legend
        dock = window.findChild(QDockWidget, name)
        if dock is not None:
            dock.hide()
    show_toolbox()
    legend = window.findChild(QDockWidget, "Layers")
    if legend is not None:
        legend.show()
        window.resizeDocks([legend], [340], Qt.Horizontal)

    canvas = iface.mapCanvas()
    extent = QgsRectangle(mean.extent())
    extent.grow(0.03 * max(extent.width(), extent.height()))
    canvas.setExtent(extent)
    canvas.refresh()
    QTimer.singleShot(500, guarded(wait_for_canvas))


def show_toolbox() -> None:
    """The Processing toolbox on the right with the 'Soil carbon' provider expanded (if available)."""
    processing = plugins.get("processing")
    if processing is None or getattr(processing, "toolbox", None) is None:
        log("the Processing toolbox is not available; the screenshot shows no toolbox")
        return
    processing.toolboxAction.setChecked(True)
    toolbox = processing.toolbox
    toolbox.show()
    tree = toolbox.algorithmTree
    model = tree.model()
    rows = (model.index(row, 0) for row in range(model.rowCount()))
    index = next((i for i in rows if i.data(Qt.DisplayRole) == PROVIDER), None)
    if index is None:
        log(f"the '{PROVIDER}' provider is not in the toolbox: is the plugin enabled?")
        return
    tree.collapseAll()
    tree.expandRecursively(index)
    tree.scrollTo(index, tree.PositionAtTop)
    iface.mainWindow().resizeDocks([toolbox], [370], Qt.Horizontal)


def wait_for_canvas(idle_since: float | None = None) -> None:
    """Poll until the canvas has been idle for SETTLE_S, then grab."""
    now = time.monotonic()
    if iface.mapCanvas().isDrawing():
        idle_since = None
    elif idle_since is None:
        idle_since = now
    elif now - idle_since >= SETTLE_S:
        grab()
        return
    QTimer.singleShot(250, guarded(lambda: wait_for_canvas(idle_since)))


def grab() -> None:
    path = os.environ["SOILCARBON_SCREENSHOT_OUT"]
    QgsApplication.processEvents()
    image = iface.mainWindow().grab()
    if image.isNull() or not image.save(path, "PNG"):
        raise RuntimeError(f"Could not write the screenshot to '{path}'.")
    log(f"wrote {path} ({image.width()}x{image.height()})")
    finish(0)


def watchdog() -> None:
    log(f"the scene did not finish within {WATCHDOG_S} s; quitting QGIS")
    finish(1)


QTimer.singleShot(WATCHDOG_S * 1000, watchdog)
QTimer.singleShot(1000, guarded(build_scene))
