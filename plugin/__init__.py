"""Soil Carbon: SOC maps with uncertainty and soil GHG fluxes in QGIS.

The plugin never imports the model stack: it drives ``soilcarbon_core`` in a worker process that runs
in its own Python environment (see ``docs/worker-protocol.md``).
"""


def classFactory(iface):
    from .plugin import SoilCarbonPlugin

    return SoilCarbonPlugin(iface)
