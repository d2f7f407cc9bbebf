"""The plugin object QGIS loads: registers the Processing provider and the settings page."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import SoilCarbonProvider


class SoilCarbonPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface  # None under qgis_process
        self.provider: SoilCarbonProvider | None = None
        self.options_factory = None

    def initProcessing(self) -> None:
        """Called by qgis_process (headless, no initGui) and by initGui."""
        if self.provider is None:
            self.provider = SoilCarbonProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        if self.iface is not None:
            from .options_page import SoilCarbonOptionsFactory

            self.options_factory = SoilCarbonOptionsFactory()
            self.iface.registerOptionsWidgetFactory(self.options_factory)

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.options_factory is not None and self.iface is not None:
            self.iface.unregisterOptionsWidgetFactory(self.options_factory)
            self.options_factory = None
