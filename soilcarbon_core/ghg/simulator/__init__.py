"""The process-based soil model of the GHG stream: daily step, vectorised over sites.

Built from published equations (METHODS.md, "Process-based soil model"); each module cites its own.
"""

from soilcarbon_core.ghg.simulator.model import (
    Management,
    ProcessParameters,
    SimulationResult,
    Sites,
    simulate,
    weather_years_needed,
)

__all__ = ["Management", "ProcessParameters", "SimulationResult", "Sites", "simulate", "weather_years_needed"]
