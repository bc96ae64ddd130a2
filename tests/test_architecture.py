"""The package's shape: the application above the core, no private names across modules, extras optional."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "areacam"


def _core_modules() -> set[str]:
    """Top-level modules and subpackages of ``areacam`` except the application and ``__main__``."""
    names = {p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    names |= {p.parent.name for p in PACKAGE.glob("*/__init__.py") if p.parent.name != "app"}
    return names


def _contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = config["contracts"]
    return contract


def test_the_layer_contract_lists_every_core_module():
    layers = _contract()["layers"]
    assert layers[:2] == ["__main__", "app"]
    listed = {name.strip() for name in layers[2].split(":")}
    missing = _core_modules() - listed
    assert not missing, (
        f"core modules {sorted(missing)} are not in the core layer of [tool.importlinter] in pyproject.toml: "
        "add them there so the contract checks them"
    )
    assert not listed - _core_modules(), f"the contract lists modules that do not exist: {listed - _core_modules()}"


def test_the_layer_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("areacam")):
            found += [f"{path.relative_to(ROOT)}: {alias.name}" for alias in node.names
                      if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def test_no_private_name_is_imported_across_modules():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _private_imports(path)]
    assert not found, f"private names imported across modules: {found}"


#: Top-level packages that only the extras (and the dev tools) bring.
EXTRAS = {"lime", "skimage", "sklearn", "scipy", "segmentation_models_pytorch", "tqdm", "zarr", "pyarrow", "pandas",
          "timm", "transformers", "captum", "pytorch_grad_cam", "quantus"}


@pytest.fixture(scope="module")
def bare_site(tmp_path_factory) -> Path:
    """A site-packages without the extras: links to every installed package except :data:`EXTRAS`."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    view = tmp_path_factory.mktemp("bare-site")
    for entry in site.iterdir():
        top = entry.name.split("-")[0].split(".")[0].lower()
        if top in EXTRAS or entry.suffix == ".pth" or entry.name.startswith("__editable__"):
            continue
        (view / entry.name).symlink_to(entry)
    return view


def _without_extras(bare_site: Path, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` as a user who installed areacam without any extra (no site, no .pth files)."""
    script = f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(bare_site)!r}]; BLOCKED = {sorted(EXTRAS)!r}\n"
    script += textwrap.dedent(code)
    return subprocess.run([sys.executable, "-S", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_the_core_runs_gradcam_without_any_extra(bare_site):
    result = _without_extras(
        bare_site,
        """
        import sys, torch, torchvision
        import areacam as ac
        model = torchvision.models.resnet18(num_classes=4).eval()
        expl = ac.GradCAM(model, "layer4")(torch.rand(2, 3, 64, 64), [ac.Class(1), ac.Class()])
        assert expl.maps.shape == (2, 2, 64, 64), expl.maps.shape
        loaded = sorted({name.split(".")[0] for name in sys.modules} & set(BLOCKED))
        assert not loaded, loaded
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_every_core_function_and_metric_runs_or_names_its_extra_without_any_extra(bare_site):
    """With no extra installed: each public explainer and metric works, or raises the ImportError naming
    the extra (ROAD's imputation needs scipy: ``[metrics]``); and no blocked package is imported."""
    result = _without_extras(
        bare_site,
        """
        import sys, torch, torchvision
        import areacam as ac
        torch.manual_seed(0)
        model = torchvision.models.resnet18(num_classes=4).eval()
        x, targets = torch.rand(2, 3, 32, 32), [ac.Class(1), ac.Class()]
        masks = torch.zeros(2, 32, 32, dtype=torch.bool)
        masks[:, 8:24, 8:24] = True
        maps = ac.GradCAM(model, "layer3")(x, targets).maps
        for explainer in (ac.Saliency(model), ac.IntegratedGradients(model, steps=4), ac.Occlusion(model, 16, 16)):
            assert explainer(x, targets).maps.shape == (2, 2, 32, 32)
        for curve in (ac.metrics.deletion, ac.metrics.insertion):
            assert curve(model, x, targets, maps, steps=4, progress=True).auc.shape == (2, 2)
        assert ac.metrics.pointing_game(maps, masks).shape == (2, 2)
        check = ac.metrics.randomisation(lambda m: ac.GradCAM(m, "layer3"), model, x, targets,
                                         layers=["fc", "layer4"], progress=True)
        assert check.spearman.shape == (2, 2, 2)
        for call in (lambda: ac.metrics.road(model, x, targets, maps, percentiles=(50,)),
                     lambda: ac.metrics.deletion(model, x, targets, maps, steps=2, baseline="noisy_linear")):
            try:
                call()
            except ImportError as err:
                assert "pip install 'areacam[metrics]'" in str(err), err
            else:
                raise SystemExit("ROAD's imputation ran without scipy")
        loaded = sorted({name.split(".")[0] for name in sys.modules} & set(BLOCKED))
        assert not loaded, loaded
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("code", "extra"),
    [
        ("ac.Lime(torch.nn.Conv2d(3, 1, 1))", "lime"),
        ("ac.data.shapes(2)", "data"),
        ("import models; models.create('unet', num_classes=2)", "seg"),
    ],
)
def test_a_missing_extra_names_itself(bare_site, code, extra):
    result = _without_extras(
        bare_site,
        f"""
        import torch
        import areacam as ac
        import areacam.data
        try:
            {code}
        except ImportError as err:
            print(err)
        else:
            raise SystemExit("no ImportError")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"pip install 'areacam[{extra}]'" in result.stdout
