"""The worker process, driven exactly as the plugin drives it: JSON in, JSON lines out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from soilcarbon_core.worker.protocol import (
    EXIT_BAD_REQUEST,
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_OK,
    PROTOCOL_VERSION,
)

from .conftest import (
    HUNTER_COVARIATES,
    HUNTER_CRS,
    HUNTER_POINTS,
    LA_LIBERTAD,
    LA_LIBERTAD_CRS,
    LA_LIBERTAD_POINTS,
    hunter_raster,
    la_libertad_rasters,
)

ROOT = Path(__file__).resolve().parents[2]


def start_worker() -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "training")])}
    return subprocess.Popen(
        [sys.executable, "-m", "soilcarbon_core.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def request(task: str, params: dict, protocol: int = PROTOCOL_VERSION) -> str:
    return json.dumps({"protocol": protocol, "task": task, "params": params}) + "\n"


def run(line: str) -> tuple[int, list[dict], str]:
    worker = start_worker()
    stdout, stderr = worker.communicate(line, timeout=120)
    messages = [json.loads(text) for text in stdout.splitlines()]  # every stdout line must be JSON
    assert all(m["protocol"] == PROTOCOL_VERSION for m in messages)
    return worker.returncode, messages, stderr


def sample_params(output: Path, **overrides) -> dict:
    return {
        "points": {"path": str(HUNTER_POINTS), "crs": HUNTER_CRS},
        "rasters": [{"path": str(hunter_raster(n)), "name": n.lower()} for n in ("Elevation", "NDVI")],
        "output": str(output),
        **overrides,
    }


def test_sample_covariates_result(tmp_path):
    code, messages, _ = run(
        request("sample_covariates", sample_params(tmp_path / "out.gpkg", method="bilinear"))
    )
    assert code == EXIT_OK
    kinds = [m["type"] for m in messages]
    assert kinds[-1] == "result" and "error" not in kinds
    percents = [m["percent"] for m in messages if m["type"] == "progress"]
    assert percents == sorted(percents) and percents[-1] == 100.0
    outputs = messages[-1]["outputs"]
    assert outputs["fields"] == ["elevation_2", "ndvi_2"]  # the CSV has Elevation and NDVI already
    assert outputs["n_points"] == outputs["n_valid"] == 506
    assert (tmp_path / "out.gpkg").is_file()


def _la_libertad_rasters() -> list[dict]:
    return [{"path": str(r.path), "name": r.name} for r in la_libertad_rasters()]


def test_predict_task_at_points_and_on_a_grid(tmp_path, raster_model_path):
    points = {"path": str(LA_LIBERTAD_POINTS), "crs": LA_LIBERTAD_CRS}
    params = {
        "model": str(raster_model_path),
        "points": points,
        "rasters": _la_libertad_rasters(),
        "device": "cpu",
    }
    code, messages, _ = run(request("predict", {**params, "output": str(tmp_path / "soc.gpkg")}))
    assert code == EXIT_OK, messages
    assert messages[-1]["outputs"]["n_predicted"] == 118
    assert messages[-1]["outputs"]["fields"][0] == "pred_mean"
    grid = {
        **params,
        "grid": str(LA_LIBERTAD / "SRTMGL1_SRTMGL1.2.sdat"),
        "output": str(tmp_path / "soc.tif"),
    }
    del grid["points"]
    code, messages, _ = run(request("predict", grid))
    assert code == EXIT_OK, messages
    assert messages[-1]["outputs"]["bands"][3] == "pred_sd_total"
    assert (tmp_path / "soc.tif").is_file()


def test_plan_campaign_task_on_an_extent_grid(tmp_path, raster_model_path):
    params = {
        "model": str(raster_model_path),
        "rasters": _la_libertad_rasters(),
        "grid": {"extent": [669500, 448500, 672500, 452000], "resolution": 60, "crs": LA_LIBERTAD_CRS},
        "budget": 5,
        "settings": {"min_spacing_m": 200.0},
        "device": "cpu",
        "output": str(tmp_path / "plan.gpkg"),
    }
    code, messages, _ = run(request("plan_campaign", params))
    assert code == EXIT_OK, messages
    assert messages[-1]["outputs"]["sites"] == 5 and (tmp_path / "plan.gpkg").is_file()
    code, messages, _ = run(request("plan_campaign", {**params, "settings": {"radius": 3}}))
    assert code == EXIT_ERROR and "Unknown PlannerSettings settings: radius" in messages[-1]["message"]


def test_train_task_writes_a_model(tmp_path):
    params = {
        "points": {"path": str(LA_LIBERTAD_POINTS), "crs": LA_LIBERTAD_CRS},
        "target": "COSha30",
        "unit": "t/ha",
        "rasters": _la_libertad_rasters(),
        "elevation": "elevation",
        "members": 2,
        "train": {"epochs": 2},
        "device": "cpu",
        "output": str(tmp_path / "soc.zip"),
    }
    code, messages, _ = run(request("train", params))
    assert code == EXIT_OK, messages
    outputs = messages[-1]["outputs"]
    assert outputs["members"] == 2 and outputs["samples"] == 118
    assert (tmp_path / "soc.zip").is_file()
    code, messages, _ = run(request("train", {**params, "train": {"epochs": "many"}}))
    assert code == EXIT_ERROR
    assert "Training setting 'epochs' must be a whole number, not 'many'" in messages[-1]["message"]


def test_environment_reports_the_stack():
    code, messages, _ = run(request("environment", {"probe_device": True}))
    assert code == EXIT_OK
    outputs = messages[-1]["outputs"]
    assert outputs["packages"]["torch"] and outputs["packages"]["rasterio"]
    assert outputs["device"]["type"] in ("cpu", "cuda")


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("this is not json\n", "bad_request"),
        (request("sample_covariates", {}, protocol=99), "protocol_version"),
        (request("make_coffee", {}), "unknown_task"),
        (request("sample_covariates", {"rasters": []}), "bad_request"),
        ("\n", "bad_request"),
    ],
)
def test_bad_requests(line, code):
    exit_code, messages, _ = run(line)
    assert exit_code == EXIT_BAD_REQUEST
    assert [m["type"] for m in messages] == ["error"]
    assert messages[0]["code"] == code


def test_user_errors_name_the_problem_and_leave_nothing(tmp_path):
    params = sample_params(tmp_path / "out.gpkg")
    params["rasters"].append({"path": str(tmp_path / "missing.tif")})
    exit_code, messages, stderr = run(request("sample_covariates", params))
    assert exit_code == EXIT_ERROR
    assert messages[-1]["code"] == "not_found"
    assert "missing.tif' does not exist" in messages[-1]["message"]
    assert "Traceback" not in stderr
    assert not any(tmp_path.iterdir())


def test_csv_without_coordinates_is_a_clear_error(tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("site,ph\na,5.5\n")
    params = sample_params(tmp_path / "out.gpkg", points={"path": str(table)})
    exit_code, messages, _ = run(request("sample_covariates", params))
    assert exit_code == EXIT_ERROR
    assert messages[-1]["code"] == "points_format"
    assert "no coordinate columns" in messages[-1]["message"]


def test_stdout_carries_protocol_lines_only():
    """Prints and C-level writes to fd 1 during a task go to stderr, never into the protocol stream."""
    script = (
        "import os, sys\n"
        "from soilcarbon_core.worker import __main__ as worker\n"
        "def chatty(params, context):\n"
        "    print('python chatter'); os.write(1, b'C chatter\\n'); return {'ok': True}\n"
        "worker.TASKS['chatty'] = chatty\n"
        "sys.exit(worker.main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=request("chatty", {}),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == EXIT_OK, done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    assert messages[-1] == {"protocol": PROTOCOL_VERSION, "type": "result", "outputs": {"ok": True}}
    assert "python chatter" in done.stderr and "C chatter" in done.stderr


@pytest.fixture(scope="module")
def many_points(tmp_path_factory) -> Path:
    """600,000 points over the Hunter Valley grids: a job that runs for seconds."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("big") / "many.csv"
    x = rng.uniform(338500, 343600, 600_000)
    y = rng.uniform(6364300, 6370400, 600_000)
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="x,y", comments="", fmt="%.2f")
    return path


@pytest.mark.parametrize("how", ["sigterm", "cancel_line"])
def test_cancel_stops_promptly_and_leaves_no_output(tmp_path, many_points, how):
    output = tmp_path / "out.gpkg"
    params = {
        "points": {"path": str(many_points), "crs": HUNTER_CRS},
        "rasters": [str(hunter_raster(n)) for n in HUNTER_COVARIATES],
        "output": str(output),
        "method": "bilinear",
    }
    worker = start_worker()
    worker.stdin.write(request("sample_covariates", params))
    worker.stdin.flush()
    for line in worker.stdout:  # wait until the work is under way
        if json.loads(line)["type"] == "progress" and json.loads(line)["percent"] > 5:
            break
    cancelled_at = time.monotonic()
    if how == "sigterm":
        worker.send_signal(signal.SIGTERM)
    else:
        worker.stdin.write(json.dumps({"protocol": PROTOCOL_VERSION, "type": "cancel"}) + "\n")
        worker.stdin.flush()
    rest = [json.loads(line) for line in worker.stdout]
    worker.wait(timeout=30)
    assert time.monotonic() - cancelled_at < 5.0
    assert worker.returncode == EXIT_CANCELLED
    assert rest[-1]["type"] == "error" and rest[-1]["code"] == "cancelled"
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())
