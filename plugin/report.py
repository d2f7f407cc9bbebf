"""Self-contained HTML reports of training and cross-validation (plots embedded as PNG data URIs).

Standard library only, so the reports are written on the QGIS side from what the worker returned.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

#: Metric key -> (label, what it measures). Metrics in the target's unit are listed in UNIT_METRICS.
METRICS: dict[str, tuple[str, str]] = {
    "r2": (
        "R²",
        "Share of the observed variance the mean prediction explains: 1 is perfect, 0 is no better than "
        "the observations' mean (it can be negative).",
    ),
    "rmse": ("RMSE", "Root mean squared error of the mean prediction; large errors weigh more."),
    "mae": ("MAE", "Mean absolute error of the mean prediction."),
    "mape": ("MAPE", "Mean absolute error as a percentage of the observed value."),
    "nll": (
        "NLL",
        "Negative log-likelihood of the observations under the predicted normal distributions: lower is "
        "better; penalises errors and wrongly sized uncertainty alike.",
    ),
    "crps": (
        "CRPS",
        "Continuous ranked probability score: the error of the whole predictive distribution (the MAE of "
        "a prediction without uncertainty); lower is better.",
    ),
    "picp90": (
        "PICP90",
        "Share of the observations inside their 90 % prediction interval: ideally 0.90; lower means "
        "overconfident intervals, higher too wide ones.",
    ),
    "ece": (
        "ECE",
        "Expected calibration error: mean gap between the nominal and the observed coverage of the "
        "intervals over all levels; 0 is calibrated, 0.5 the worst.",
    ),
    "ence": (
        "ENCE",
        "Expected normalised calibration error: mean relative gap between the predicted sd and the actual "
        "RMSE, in bins of predicted sd; 0 is ideal.",
    ),
    "n": ("n", "Samples the metrics are computed on."),
}
UNIT_METRICS = ("rmse", "mae", "crps")

STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 1em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; }
figcaption { font-size: 90%; color: #555; max-width: 36em; }
"""


def format_value(value: Any) -> str:
    """Numbers to 4 significant digits, lists joined, anything else as text."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "—"}[value]
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(item) for item in value) or "—"
    return str(value)


def png_data_uri(path: str | os.PathLike[str]) -> str:
    """The PNG at ``path`` as a ``data:image/png;base64,...`` URI."""
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG"):
        raise ValueError(f"'{path}' is not a PNG image")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


class HtmlReport:
    """An HTML page built section by section and written in one go."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = [f"<h1>{escape(title)}</h1>"]

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        self.parts.append(f"<p>{escape(text)}</p>")

    def table(self, rows: Iterable[tuple[str, Any]], header: tuple[str, str] | None = None) -> None:
        """A two-column table of names and values (values formatted by :func:`format_value`)."""
        head = f"<tr><th>{escape(header[0])}</th><th>{escape(header[1])}</th></tr>" if header else ""
        body = "".join(
            f"<tr><th>{escape(str(name))}</th><td>{escape(format_value(value))}</td></tr>"
            for name, value in rows
        )
        self.parts.append(f"<table>{head}{body}</table>")

    def metrics(self, metrics: dict[str, float], unit: str) -> None:
        """The metrics table: label, value (the exact value in ``data-value``), unit and meaning."""
        rows = []
        for key in [*(k for k in METRICS if k in metrics), *(k for k in metrics if k not in METRICS)]:
            value = metrics[key]
            label, meaning = METRICS.get(key, (key, ""))
            shown_unit = unit if key in UNIT_METRICS else "%" if key == "mape" else ""
            rows.append(
                f'<tr data-metric="{escape(key)}"><th>{escape(label)}</th>'
                f'<td class="number" data-value="{escape(repr(value))}">{escape(format_value(value))}</td>'
                f"<td>{escape(shown_unit)}</td><td>{escape(meaning)}</td></tr>"
            )
        head = "<tr><th>Metric</th><th>Value</th><th>Unit</th><th>Meaning</th></tr>"
        self.parts.append(f'<table class="metrics">{head}{"".join(rows)}</table>')

    def image(self, path: str | os.PathLike[str], caption: str) -> None:
        """The PNG at ``path``, embedded, with a caption."""
        self.parts.append(
            f'<figure><img src="{png_data_uri(path)}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )

    def html(self) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(self.title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(self.parts)
            + "\n</body></html>\n"
        )

    def write(self, path: str | os.PathLike[str]) -> str:
        """Write the page to ``path`` complete or not at all (a temporary file renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        try:
            partial.write_text(self.html(), encoding="utf-8")
            os.replace(partial, path)
        finally:
            if partial.exists():
                partial.unlink()
        return str(path)
