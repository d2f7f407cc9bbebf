"""`make package`: the plugin zip is fit for the QGIS plugin repository, and it installs and loads in a
fresh QGIS profile, headless, with every Processing algorithm and the core it carries."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

SCRIPT = ROOT / "scripts" / "stage_plugin.py"
# Debian's /usr/bin/qgis_process wrapper passes --noversioncheck, which 3.22's binary rejects.
QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process")


def load_stage_plugin():
    spec = importlib.util.spec_from_file_location("stage_plugin", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stage_plugin = load_stage_plugin()


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """The zip, built as `make package` builds it (the script's command line)."""
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--zip", str(dist)], capture_output=True, text=True, check=True
    )
    archive = Path(done.stdout.strip())
    assert archive.parent == dist and archive.is_file()
    assert [p.name for p in dist.iterdir()] == [archive.name]  # no .partial left behind
    return archive


def safe_extract(archive: Path, destination: Path) -> None:
    """Extract ``archive`` after checking that every member stays inside ``soilcarbon/``."""
    root = destination.resolve()
    with zipfile.ZipFile(archive) as bundle:
        for name in bundle.namelist():
            target = (root / name).resolve()
            assert name.startswith("soilcarbon/") and "\\" not in name, name
            assert target.is_relative_to(root / "soilcarbon"), f"{name} escapes the plugin folder"
        bundle.extractall(root)


def test_zip_is_fit_for_the_plugin_repository(package):
    version = configparser.ConfigParser()
    version.read(ROOT / "metadata.txt", encoding="utf-8")
    assert package.name == f"soilcarbon-{version['general']['version']}.zip"
    assert package.stat().st_size < 25_000_000
    with zipfile.ZipFile(package) as bundle:
        names = bundle.namelist()
        metadata = configparser.ConfigParser(interpolation=None)
        metadata.optionxform = str
        metadata.read_string(bundle.read("soilcarbon/metadata.txt").decode("utf-8"))
        general = metadata["general"]
        for key in stage_plugin.REQUIRED_METADATA:
            assert general.get(key, "").strip(), f"metadata.txt lacks {key}"
        assert general["hasProcessingProvider"] == "yes"
        assert f"soilcarbon/{general['icon']}" in names
        assert "soilcarbon/LICENSE" in names and "soilcarbon/__init__.py" in names
        for suffix in (".so", ".pyd", ".dll", ".exe", ".dylib", ".pyc"):
            assert not [n for n in names if n.endswith(suffix)], suffix
        for name in names:
            assert not bundle.read(name)[:4].startswith((b"\x7fELF", b"MZ")), f"{name} is compiled code"
        # What the plugin needs at run time travels with it.
        for needed in (
            "soilcarbon/core/soilcarbon_core/worker/__main__.py",
            "soilcarbon/core/soilcarbon_core/ghg/pretrained/kgfgnn_ghg.zip",
            "soilcarbon/core/training/soilcarbon_training/trainer.py",
            "soilcarbon/core/requirements/core.in",
            "soilcarbon/core/requirements/core.lock",
        ):
            assert needed in names, needed
        assert (
            bundle.read("soilcarbon/core/requirements/core.lock")
            == (ROOT / "requirements" / "core.lock").read_bytes()
        )


@pytest.fixture
def staged(tmp_path) -> Path:
    """A staged plugin folder to break in the tests below."""
    return stage_plugin.stage(tmp_path / "plugins")


def test_missing_metadata_field_is_named(staged):
    text = (staged / "metadata.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith(("email=", "tracker="))]
    (staged / "metadata.txt").write_text(
        "\n".join(lines).replace("hasProcessingProvider=yes", "hasProcessingProvider=no")
    )
    found = stage_plugin.problems(staged)
    assert found[0] == "metadata.txt lacks the required field(s) email, tracker: add them under [general]."
    assert found[1] == "metadata.txt says hasProcessingProvider=no; it must be 'yes'."
    assert len(found) == 2


def test_binaries_licence_and_icon_are_checked(staged):
    (staged / "algorithms" / "_fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF\x02\x01")
    (staged / "helper.bin").write_bytes(b"\x7fELF\x02\x01")  # compiled code under an innocent name
    (staged / "styles.qml").write_text("<qgis/>")  # data files are fine
    (staged / "LICENSE").unlink()
    (staged / "icon.svg").unlink()
    with pytest.raises(stage_plugin.PackageError) as info:
        stage_plugin.check(staged)
    message = str(info.value)
    assert "The icon 'icon.svg' named in metadata.txt is not in the plugin folder" in message
    assert "LICENSE is missing" in message
    assert (
        "Compiled files are not allowed in the plugin: "
        "algorithms/_fast.cpython-311-x86_64-linux-gnu.so, helper.bin. Remove them." in message
    )
    assert "styles.qml" not in message


def test_oversized_zip_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(stage_plugin.PackageError, match=r"would be 0\.\d MB; .* at most 0\.1 MB"):
        stage_plugin.build_zip(tmp_path, max_bytes=100_000)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_check_fails_the_command_and_keeps_the_installed_plugin(tmp_path, monkeypatch):
    installed = stage_plugin.stage(tmp_path / "plugins")
    monkeypatch.setattr(stage_plugin, "REQUIRED_METADATA", ("name", "licence_url"))
    with pytest.raises(stage_plugin.PackageError, match=r"lacks the required field\(s\) licence_url"):
        stage_plugin.stage(tmp_path / "plugins")
    assert (installed / "metadata.txt").is_file()  # the earlier installation is untouched
    assert sorted(p.name for p in (tmp_path / "plugins").iterdir()) == ["soilcarbon"]


@pytest.mark.skipif(QGIS_PROCESS is None, reason="qgis_process is not installed")
def test_zip_installs_into_a_fresh_profile_and_lists_every_algorithm(package, tmp_path, qgis_app):
    # Written out, not read from plugin.algorithms: an algorithm dropped from the registry must fail here.
    expected = {
        f"soilcarbon:{name}"
        for name in (
            "samplecovariates",
            "imageryfeatures",
            "trainmodel",
            "evaluatemodel",
            "predictpoints",
            "predictmap",
            "predictghg",
            "plancampaign",
            "buildgraph",
        )
    }
    plugins = tmp_path / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    safe_extract(package, plugins)
    env = {**os.environ, "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PYTHONPATH", None)  # the installed plugin must stand on its own

    enabled = subprocess.run(
        [QGIS_PROCESS, "plugins", "enable", "soilcarbon"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    ini = configparser.ConfigParser()
    ini.read(tmp_path / "profiles" / "default" / "QGIS" / "QGIS3.ini")
    assert ini["PythonPlugins"]["soilcarbon"] == "true"  # the fresh profile, not the user's

    listed = subprocess.run(
        [QGIS_PROCESS, "--json", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    provider = json.loads(listed.stdout)["providers"]["soilcarbon"]
    assert provider["is_active"]
    assert set(provider["algorithms"]) == expected


def test_installed_plugin_runs_the_core_it_carries(package, tmp_path):
    """The worker of a zip-installed plugin imports soilcarbon_core from the plugin's own core/ folder."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    safe_extract(package, plugins)
    probe = (
        "import subprocess\n"
        "from soilcarbon.worker_client import clean_environment, resolve_interpreter\n"
        "python, _ = resolve_interpreter()\n"
        "code = 'import soilcarbon_core, soilcarbon_training; "
        "print(soilcarbon_core.__file__); print(soilcarbon_training.__file__)'\n"
        "subprocess.run([python, '-c', code], env=clean_environment(), check=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(plugins)}  # as QGIS puts its plugins folder on sys.path
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    core = plugins / "soilcarbon" / "core"
    assert done.stdout.split() == [
        str(core / "soilcarbon_core" / "__init__.py"),
        str(core / "training" / "soilcarbon_training" / "__init__.py"),
    ]
