"""The wheel carries every package, the styles and the bundled sample runs."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def declared_packages() -> list[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data["tool"]["setuptools"]["packages"]


def test_every_package_directory_is_declared():
    data = REPO / "aw_tui" / "data"
    found = {
        ".".join(path.parent.relative_to(REPO).parts)
        for path in (REPO / "aw_tui").rglob("__init__.py")
        # The demo project under data/ is shipped as files, not as packages of aw_tui.
        if path.parent == data or data not in path.parents
    }
    assert found | {"aw_tui.styles"} == set(declared_packages())


def test_wheel_contains_styles_and_samples(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("aw_tui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "aw_tui/styles/__init__.py" in names
    # Every stylesheet a screen loads (by name, from aw_tui.styles) ships.
    assert {f"aw_tui/styles/{sheet.name}" for sheet in (REPO / "styles").glob("*.tcss")} <= set(names)
    assert {"app.tcss", "run.tcss", "dialogs.tcss", "ledger.tcss"} <= {p.name for p in (REPO / "styles").glob("*.tcss")}
    samples = [n for n in names if n.startswith("aw_tui/data/samples/")]
    assert any(n.endswith("/events.jsonl") for n in samples)
    assert any(n.endswith("/steps/0001_analyst_plan.md") for n in samples)
    assert any(n.endswith("speed_up_gpu_sort/ledger.json") for n in samples)
    assert "aw_tui/data/demo/script.json" in names
    assert "aw_tui/data/demo/project/shop/pricing.py" in names
    assert "aw_tui/data/demo/project/tests/test_pricing.py" in names
    for package in declared_packages():
        assert package.replace(".", "/") + "/__init__.py" in names
