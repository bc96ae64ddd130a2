"""The house: folders by role in layers, no import cycles, one top-level package in the wheel, extras optional."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "areacam"
MODELS = ROOT / "models"  # installed as areacam.models

#: The modules that may sit directly in areacam/: everything else lives in a folder by role.
TOP_LEVEL = {"__init__", "__main__", "_version"}


def _contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = config["contracts"]
    return contract


def _folders() -> set[str]:
    return {p.parent.name for p in PACKAGE.glob("*/__init__.py")}


def test_every_module_lives_in_a_folder_and_every_folder_has_a_layer():
    loose = {p.stem for p in PACKAGE.glob("*.py")} - TOP_LEVEL
    assert not loose, f"modules directly in areacam/: {sorted(loose)}; put each in the folder of its role"
    layers = {name.strip() for layer in _contract()["layers"] for name in layer.split("|")}
    assert _folders() - layers == set(), (
        f"folders {sorted(_folders() - layers)} have no layer in [tool.importlinter] of pyproject.toml: place them"
    )
    assert layers - _folders() - {"__main__"} == set(), f"the contract names missing folders: {layers - _folders()}"


def test_no_module_is_over_500_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in [*PACKAGE.rglob("*.py"), *MODELS.glob("*.py")]
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, f"modules over 500 lines (split them by role): {long}"


def _module_name(path: Path) -> str:
    """The import name of a source file: ``areacam/x/y.py`` -> ``areacam.x.y``,
    ``models/vae.py`` -> ``areacam.models.vae``."""
    if path.is_relative_to(MODELS):
        parts = ["areacam", "models", *path.relative_to(MODELS).with_suffix("").parts]
    else:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import that runs (``if TYPE_CHECKING:`` blocks left out), made absolute."""
    tree = ast.parse(path.read_text(), str(path))
    checking = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((base, [alias.name for alias in node.names]))
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the areacam modules it imports (a name that is a submodule counts as that module)."""
    files = [*PACKAGE.rglob("*.py"), *MODELS.glob("*.py")]
    modules = {_module_name(p) for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        edges = set()
        for base, names in _runtime_imports(path):
            for name in names or [""]:
                target = f"{base}.{name}" if name and f"{base}.{name}" in modules else base
                if target in modules:
                    edges.add(target)
        graph[_module_name(path)] = edges - {_module_name(path)}
    return graph


def test_no_import_cycles():
    """No module reaches itself through the imports that run (a package's ``__init__`` is its own module)."""
    graph = _graph()
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_reference_models_sit_between_the_app_and_the_library():
    """areacam.models imports the library, never the app; only the app imports it; nothing imports a bare
    ``models`` (the wheel installs none)."""
    graph = _graph()
    for module, edges in graph.items():
        if module.startswith("areacam.models"):
            assert not [e for e in edges if e.startswith("areacam.app")], module
        elif not module.startswith("areacam.app"):
            assert not [e for e in edges if e.startswith("areacam.models")], f"{module} imports the reference models"
    for path in [
        *PACKAGE.rglob("*.py"),
        *MODELS.glob("*.py"),
        *(ROOT / "tests").glob("*.py"),
        *(ROOT / "scripts").glob("*.py"),
    ]:
        bare = [base for base, _ in _runtime_imports(path) if base == "models" or base.startswith("models.")]
        assert not bare, f"{path.relative_to(ROOT)} imports a bare 'models': use areacam.models"


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("areacam")):
            found += [
                f"{path.relative_to(ROOT)}: {alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
    return found


def test_no_private_name_is_imported_across_modules():
    found = [hit for path in sorted([*PACKAGE.rglob("*.py"), *MODELS.glob("*.py")]) for hit in _private_imports(path)]
    assert not found, f"private names imported across modules: {found}"


def test_the_package_list_is_every_folder():
    """pyproject's explicit package list (the mapped models/ folder needs one) holds every folder."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {_module_name(p) for p in PACKAGE.rglob("__init__.py")} | {"areacam.models"}
    assert set(config["packages"]) == folders
    assert config["package-dir"] == {"areacam.models": "models"}


def test_the_version_is_written_once():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in config["project"] and config["project"]["dynamic"] == ["version"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "areacam._version.__version__"}
    hits = [p for p in PACKAGE.rglob("*.py") if '__version__ = "' in p.read_text()]
    assert hits == [PACKAGE / "_version.py"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps .`` unpacked: what ``pip install .`` puts into site-packages."""
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = out.glob("areacam-*.whl")
    unpacked = out / "site"
    with zipfile.ZipFile(built) as archive:
        archive.extractall(unpacked)
    return unpacked


def test_the_wheel_holds_areacam_as_its_only_top_level_package(wheel):
    tops = {p.name for p in wheel.iterdir() if not p.name.endswith(".dist-info")}
    assert tops == {"areacam"}
    assert (wheel / "areacam" / "models" / "vae.py").is_file()
    for page in ("explorer.html", "explorer.js", "volume_explorer.html"):  # the explorers' templates and script
        assert (wheel / "areacam" / "inspect" / page).is_file()


#: Top-level packages that only the extras (and the dev tools) bring.
EXTRAS = {
    "lime",
    "skimage",
    "sklearn",
    "scipy",
    "segmentation_models_pytorch",
    "tqdm",
    "zarr",
    "pyarrow",
    "pandas",
    "timm",
    "transformers",
    "captum",
    "pytorch_grad_cam",
    "quantus",
    "lightning",
    "lightning_fabric",
    "lightning_utilities",
    "pytorch_lightning",
    "tensorboard",
    "torchmetrics",
    "nibabel",
}


@pytest.fixture(scope="module")
def bare_site(tmp_path_factory, wheel) -> Path:
    """A site-packages without the extras: the built wheel, and links to every installed package except
    :data:`EXTRAS` (and the editable install of this checkout)."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    view = tmp_path_factory.mktemp("bare-site")
    for entry in site.iterdir():
        top = entry.name.split("-")[0].split(".")[0].lower()
        if top in EXTRAS or top == "areacam" or entry.suffix == ".pth" or entry.name.startswith("__editable__"):
            continue
        (view / entry.name).symlink_to(entry)
    (view / "areacam").symlink_to(wheel / "areacam")
    return view


def _without_extras(bare_site: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` as a user who installed the wheel without any extra (no site, no .pth files), away from
    the checkout."""
    # cv2 inserts its native folder at sys.path[1]: the cwd stays first so that folder precedes the site
    script = f"import sys; sys.path[:0] = ['', {str(bare_site)!r}]; BLOCKED = {sorted(EXTRAS)!r}\n"
    script += textwrap.dedent(code)
    return subprocess.run([sys.executable, "-S", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_core_runs_gradcam_without_any_extra(bare_site, tmp_path):
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
        assert ac.__file__.startswith(sys.path[1]), ac.__file__  # the wheel's copy, not the checkout
        print("ok")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_every_core_function_and_metric_runs_or_names_its_extra_without_any_extra(bare_site, tmp_path):
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
        assert ac.losses.outside_mass(maps, masks).shape == (2, 2)
        assert len(ac.callbacks.explain_epoch(x, targets, ac.GradCAM(model, "layer3"), 0)) == 1
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
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("code", "extra"),
    [
        ("ac.Lime(torch.nn.Conv2d(3, 1, 1))", "lime"),
        ("ac.data.shapes(2)", "data"),
        ("from areacam import models; models.create('unet', num_classes=2)", "seg"),
        ("ac.callbacks.ExplainEveryEpoch", "lightning"),
        ("from areacam.app.nifti import read_scan; read_scan('scan.nii.gz', 1)", "medical"),
    ],
)
def test_a_missing_extra_names_itself(bare_site, code, extra, tmp_path):
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
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"pip install 'areacam[{extra}]'" in result.stdout
