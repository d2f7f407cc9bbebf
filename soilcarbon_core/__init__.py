"""soilcarbon_core: the model package behind the Soil Carbon QGIS plugin.

It never imports QGIS. Use it from the command line (``soilcarbon``), from Python, or through the
worker process (``python -m soilcarbon_core.worker``) that the plugin drives.
"""

__version__ = "0.6.0"
