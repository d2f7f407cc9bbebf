"""A screenshot of QGIS showing the demo SOC prediction as the plugin styles it (standard library only).

Stages the plugin into a throw-away QGIS profile (the user's profile is untouched), enables it, starts
the real QGIS under Xvfb and runs ``scripts/qgis_screenshot_scene.py`` inside it: the scene loads the
demo map (mean, total sd) and points with the plugin's styles, grabs the main window and quits.

    python3 scripts/qgis_screenshot.py                      # out/demo_* -> docs/images/qgis_demo.png
    python3 scripts/qgis_screenshot.py --out shot.png --timeout 300
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENE = ROOT / "scripts" / "qgis_screenshot_scene.py"
SCREEN = (1440, 900)
#: QGIS3.ini of the throw-away profile: the plugin (and Processing) enabled, no version check, no
#: 'save the project?' question on exit.
SETTINGS = """\
[PythonPlugins]
soilcarbon=true
processing=true

[qgis]
checkVersion=false
askToSaveProjectChanges=false
"""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ScreenshotError(Exception):
    """No screenshot was made; the message says why and what to do."""


def make_profile(root: Path) -> Path:
    """A fresh profile ``root/profiles/default`` with the plugin staged and enabled; returns the profile."""
    profile = root / "profiles" / "default"
    plugins = profile / "python" / "plugins"
    staged = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "stage_plugin.py"), "--dir", str(plugins)],
        capture_output=True,
        text=True,
    )
    if staged.returncode != 0:
        raise ScreenshotError(f"Staging the plugin failed:\n{staged.stdout}{staged.stderr}")
    (profile / "QGIS").mkdir(parents=True, exist_ok=True)
    (profile / "QGIS" / "QGIS3.ini").write_text(SETTINGS, encoding="utf-8")
    return profile


def run_qgis(command: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group; on timeout end that group (Xvfb and QGIS with it)."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        raise ScreenshotError(
            f"QGIS did not finish within {timeout:.0f} s and was stopped; its output:\n{output}"
        ) from None
    return subprocess.CompletedProcess(command, process.returncode, output, None)


def screenshot(points: Path, raster: Path, model: Path, out: Path, timeout: float) -> Path:
    """Write the screenshot to ``out`` (complete or not at all) and return it."""
    missing = [str(path) for path in (points, raster, model) if not path.is_file()]
    if missing:
        raise ScreenshotError(f"Missing input(s): {', '.join(missing)}. Run 'make demo' first.")
    for program in ("xvfb-run", "qgis"):
        if shutil.which(program) is None:
            raise ScreenshotError(f"'{program}' is not on PATH: run 'make system' (Debian packages).")
    with tempfile.TemporaryDirectory(prefix="soilcarbon-qgis-") as scratch:
        root = Path(scratch)
        make_profile(root)
        shot = root / "screenshot.png"
        env = {
            **os.environ,
            "QT_QPA_PLATFORM": "xcb",
            "SOILCARBON_SCREENSHOT_POINTS": str(points.resolve()),
            "SOILCARBON_SCREENSHOT_MAP": str(raster.resolve()),
            "SOILCARBON_SCREENSHOT_MODEL": str(model.resolve()),
            "SOILCARBON_SCREENSHOT_OUT": str(shot),
            "SOILCARBON_SCREENSHOT_SIZE": f"{SCREEN[0]}x{SCREEN[1]}",
        }
        env.pop("PYTHONPATH", None)  # the staged plugin stands on its own
        command = [
            "xvfb-run",
            "-a",
            "-s",
            f"-screen 0 {SCREEN[0]}x{SCREEN[1]}x24",
            "qgis",
            "--nologo",
            "--noversioncheck",
            "--profiles-path",
            str(root),
            "--code",
            str(SCENE),
        ]
        result = run_qgis(command, env, timeout)
        if not shot.is_file() or shot.read_bytes()[:8] != PNG_MAGIC:
            raise ScreenshotError(
                f"QGIS exited with code {result.returncode} without writing the screenshot; its output:\n"
                f"{result.stdout}"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".png.partial")
        shutil.copyfile(shot, partial)
        partial.replace(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=Path, default=ROOT / "out" / "demo_soc_points.gpkg")
    parser.add_argument("--map", type=Path, default=ROOT / "out" / "demo_soc_map.tif")
    parser.add_argument("--model", type=Path, default=ROOT / "out" / "demo_model.zip")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "qgis_demo.png")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds QGIS may take (default 180)")
    args = parser.parse_args()
    try:
        path = screenshot(args.points, args.map, args.model, args.out, args.timeout)
    except ScreenshotError as err:
        print(f"qgis_screenshot: {err}", file=sys.stderr)
        return 1
    print(f"{path} ({path.stat().st_size / 1000:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
