"""The Processing provider: every capability of the plugin as a Processing algorithm."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS
from .settings import PLUGIN_DIR


class SoilCarbonProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "soilcarbon"

    def name(self) -> str:
        return "Soil carbon"

    def longName(self) -> str:
        return "Soil carbon: SOC with uncertainty and soil GHG fluxes"

    def icon(self) -> QIcon:
        return QIcon(str(PLUGIN_DIR / "icon.svg"))

    def loadAlgorithms(self) -> None:
        # New instances every time: re-adding stored ones fails once QGIS deleted their C++ side.
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
