"""The plugin object QGIS loads: registers the Processing provider, the settings page and the dock."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import SoilCarbonProvider
from .settings import PLUGIN_DIR

MENU = "&Soil carbon"


class SoilCarbonPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface  # None under qgis_process
        self.provider: SoilCarbonProvider | None = None
        self.options_factory = None
        self.dock_action = None
        self.dock = None

    def initProcessing(self) -> None:
        """Called by qgis_process (headless, no initGui) and by initGui."""
        if self.provider is None:
            self.provider = SoilCarbonProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        if self.iface is not None:
            from qgis.PyQt.QtCore import Qt
            from qgis.PyQt.QtGui import QIcon
            from qgis.PyQt.QtWidgets import QAction

            from .dock import SoilCarbonDock
            from .options_page import SoilCarbonOptionsFactory

            self.options_factory = SoilCarbonOptionsFactory()
            self.iface.registerOptionsWidgetFactory(self.options_factory)
            self.dock = SoilCarbonDock(self.iface.mainWindow())
            self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
            self.dock.hide()
            self.dock_action = QAction(
                QIcon(str(PLUGIN_DIR / "icon.svg")), "Soil carbon panel", self.iface.mainWindow()
            )
            self.dock_action.setToolTip("Predict soil carbon at points or as a map")
            self.dock.setToggleVisibilityAction(self.dock_action)
            self.iface.addToolBarIcon(self.dock_action)
            self.iface.addPluginToMenu(MENU, self.dock_action)

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.options_factory is not None and self.iface is not None:
            self.iface.unregisterOptionsWidgetFactory(self.options_factory)
            self.options_factory = None
        if self.dock is not None:
            self.dock.shutdown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.dock_action is not None:
            self.iface.removePluginMenu(MENU, self.dock_action)
            self.iface.removeToolBarIcon(self.dock_action)
            self.dock_action.deleteLater()
            self.dock_action = None
