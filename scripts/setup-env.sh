#!/usr/bin/env bash
# Create one of the project's two Python environments, from scratch, and check it works.
#   setup-env.sh core  DIR   own venv (no system site packages): torch, PyG, terratorch, rasterio, numpy 2
#   setup-env.sh qgis  DIR   venv of Debian's python with system site packages (qgis, numpy 1.x) + pytest-qgis
# DIR/.ready is written last: an environment without it is incomplete and is rebuilt.
set -euo pipefail
kind=$1 dir=$2
root=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$dir/.ready" ] && exit 0
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
# --isolated: ignore pip configuration and PIP_* variables; on these machines they add a folder whose
# CPU-only torch wheel pip would prefer, and which does not match PyPI's torchvision.
pip_install() { "$dir/bin/python" -m pip install --isolated --quiet --disable-pip-version-check "$@"; }
case $kind in
  core)
    echo "Creating the core environment in $dir (about 6 GB, a few minutes)"
    /usr/bin/python3 -m venv "$dir"
    pip_install --upgrade pip
    pip_install -c "$root/requirements/core.lock" -r "$root/requirements/core.in"
    "$dir/bin/python" - <<'PY'
import torch, torchvision, torch_geometric, terratorch, rasterio, numpy
assert numpy.__version__.startswith("2."), numpy.__version__
assert torch.__version__.split("+")[1:] == torchvision.__version__.split("+")[1:], (
    f"torch {torch.__version__} and torchvision {torchvision.__version__} are different builds")
print(f"core environment ok: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"torch_geometric {torch_geometric.__version__}, rasterio {rasterio.__version__}, numpy {numpy.__version__}")
PY
    ;;
  qgis)
    echo "Creating the QGIS test environment in $dir"
    /usr/bin/python3 -m venv --system-site-packages "$dir"
    pip_install -r "$root/requirements/qgis.in"
    "$dir/bin/python" - <<'PY'
import numpy, qgis.core, pytest_qgis
from osgeo import gdal_array  # fails when numpy 2 shadows Debian's numpy 1.x
assert numpy.__version__.startswith("1."), f"numpy {numpy.__version__} in the QGIS environment; it must stay 1.x"
print(f"QGIS environment ok: QGIS {qgis.core.Qgis.QGIS_VERSION}, numpy {numpy.__version__}")
PY
    ;;
  *) echo "usage: $0 core|qgis DIR" >&2; exit 2 ;;
esac
touch "$dir/.ready"
