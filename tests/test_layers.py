"""The layering rules of DESIGN.md, enforced: imports point downward only."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aw_tui"
REPO = PACKAGE.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def layer_files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


FORBIDDEN = {
    "model": ("textual", "litellm", "aw_tui.store", "aw_tui.engine", "aw_tui.ui"),
    "store": ("textual", "litellm", "aw_tui.engine", "aw_tui.ui"),
    "engine": ("textual", "aw_tui.ui"),
    "ui": ("litellm",),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_downward(layer):
    offences = []
    for path in layer_files(layer):
        for module in imported_modules(path):
            if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN[layer]):
                offences.append(f"{path.relative_to(REPO)} imports {module}")
    assert offences == []


def test_only_the_engine_imports_litellm():
    offences = [
        f"{path.relative_to(REPO)}"
        for path in PACKAGE.rglob("*.py")
        if "engine" not in path.relative_to(PACKAGE).parts
        and any(m == "litellm" or m.startswith("litellm.") for m in imported_modules(path))
    ]
    assert offences == []


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return set(out.stdout.split())


def test_model_and_store_load_neither_textual_nor_litellm():
    modules = [f"aw_tui.{layer}.{p.stem}" for layer in ("model", "store") for p in layer_files(layer) if p.stem != "__init__"]
    loaded = loaded_after_import(", ".join(modules))
    assert not {m for m in loaded if m.split(".")[0] in ("textual", "litellm")}


def test_cli_read_only_commands_do_not_load_litellm():
    loaded = loaded_after_import("aw_tui.cli")
    assert "litellm" not in loaded


def test_tui_start_up_leaves_litellm_unloaded():
    if not (PACKAGE / "ui" / "app.py").exists():
        pytest.skip("aw_tui/ui/app.py does not exist yet (issue 4)")
    assert "litellm" not in loaded_after_import("aw_tui.ui.app")


def test_tui_first_frame_path_leaves_the_models_and_pydantic_unloaded():
    # The runs list is the first frame; the models, pydantic and the other screens load when first needed.
    loaded = loaded_after_import("aw_tui.ui.app")
    assert not {m for m in loaded if m.split(".")[0] == "pydantic" or m in ("aw_tui.model.events", "aw_tui.model.state")}
