"""The package's shape (docs/architecture.md): calls go cli -> api -> codec -> container and never back up,
decoding never loads training code, callers ask a codec what it takes instead of naming methods."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffcodec.artifacts import artifacts_dir

from conftest import subprocess_env, synthetic_image

PACKAGE = Path(__file__).resolve().parent.parent / "diffcodec"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every diffcodec module a file imports, at top level or inside functions."""
    tree = ast.parse(path.read_text())
    here = _module_name(path)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("diffcodec")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:       # relative import: resolve against this module's package
                pkg = here.split(".")
                if not path.name == "__init__.py":
                    pkg = pkg[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.startswith("diffcodec"):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names}   # `from diffcodec import api`
    return out


MODULES = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _imports_of(prefix: str) -> dict[str, set[str]]:
    return {m: imps for m, imps in MODULES.items() if m == prefix or m.startswith(prefix + ".")}


def _hits(imports: set[str], banned: str) -> set[str]:
    return {i for i in imports if i == banned or i.startswith(banned + ".")}


def test_the_import_graph_has_the_layers_the_docs_describe():
    assert len(MODULES) > 20
    leaves = ("diffcodec.container", "diffcodec.entropy", "diffcodec.device", "diffcodec.atomic",
              "diffcodec.progress", "diffcodec.errors")
    for leaf in leaves:
        others = {i for i in MODULES[leaf] if not _hits({i}, "diffcodec.errors")}
        assert not others, f"{leaf} must be a leaf: imports {others}"
    for module, imports in _imports_of("diffcodec.methods").items():
        for up in ("diffcodec.api", "diffcodec.cli", "diffcodec.bench", "diffcodec.training"):
            assert not _hits(imports, up), f"{module} calls back up into {up}"
    for module, imports in MODULES.items():
        if module not in ("diffcodec.cli", "diffcodec.__main__"):
            assert not _hits(imports, "diffcodec.cli"), f"{module} imports the CLI"
        if not module.startswith("diffcodec.training") and module != "diffcodec.cli_train":
            assert not _hits(imports, "diffcodec.training"), f"inference module {module} imports training code"
    assert "diffcodec.training" in MODULES, "the trainers live in one package"


def test_no_module_outside_the_methods_names_a_method():
    """`method == "ddcm"`, `method in ("ddcm", "diffae")` and friends belong inside the codecs."""
    pattern = re.compile(r"""\bmethod\b[^\n]{0,20}?(==|!=|\bin\b)\s*[(\["']""")
    for path in PACKAGE.rglob("*.py"):
        if "methods" in path.relative_to(PACKAGE).parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            assert not pattern.search(line), f"{path.name}:{n} names a method: {line.strip()}"


def test_a_file_is_framed_in_one_place():
    for path in PACKAGE.rglob("*.py"):
        if path.name == "container.py":
            continue
        text = path.read_text()
        assert "Header(" not in text, f"{path.relative_to(PACKAGE)} builds a container Header by hand"


_CHILD = r"""
import json, sys
from diffcodec.cli import main
args = json.loads(sys.argv[1])
for argv in args:
    try:
        main(argv)
    except SystemExit as e:
        if e.code:
            raise
print(json.dumps(sorted(m for m in sys.modules if m.startswith("diffcodec"))))
"""


@pytest.mark.slow
def test_coding_imports_no_training_module(tmp_path):
    """Encode and decode with every method in a fresh process through the CLI: no training module is loaded."""
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(synthetic_image(24, 32)).save(src)
    runs = []
    for method, extra in (("opq", []), ("ddcm", ["--space", "latent", "--steps", "3", "--k", "64"]),
                          ("diffae", [])):
        ddc = tmp_path / f"{method}.ddc"
        runs += [["encode", str(src), "-o", str(ddc), "-m", method, "--quiet", "--device", "cpu", *extra],
                 ["decode", str(ddc), "-o", str(tmp_path / f"{method}.png"), "--quiet", "--device", "cpu"]]
    p = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(runs)], capture_output=True,
                       env=subprocess_env(artifacts_dir(), threads=1), timeout=600)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    loaded = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert "diffcodec.methods.ddcm" in loaded and "diffcodec.methods.diffae" in loaded   # the runs happened
    assert [m for m in loaded if m.startswith("diffcodec.training")] == []


@pytest.mark.slow
@pytest.mark.parametrize("method, encode_params, decode_flags", [
    ("opq", {}, ["--refine"]),
    ("ddcm", {"space": "latent", "steps": 3, "k": 64}, []),
    ("ddcm", {"space": "pixel", "steps": 3, "k": 64}, []),
    ("ddcm", {"base": "opq-16-8-8", "steps": 2, "k": 64}, []),
    ("diffae", {}, []),
])
def test_decode_device_cpu_is_honoured_for_every_method(method, encode_params, decode_flags, tmp_path,
                                                         one_thread, monkeypatch):
    """With a (pretended) GPU present, `decode --device cpu` must still run on the CPU: anything that falls back to
    'auto' picks 'cuda' and fails on this CPU-only torch build."""
    import torch
    from PIL import Image

    from diffcodec import api
    from diffcodec.cli import main
    from diffcodec.device import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a real GPU is present: the fake-CUDA trap would not fail")
    img = synthetic_image(16, 24)
    params = {**encode_params, **({"device": "cpu"} if api.get_codec(method).takes_device() else {})}
    src = tmp_path / "in.ddc"
    src.write_bytes(api.encode(img, method=method, **params))
    expected = api.decode(src.read_bytes(), **({"refine": True, "device": "cpu"} if decode_flags else
                                               {"device": "cpu"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"       # the trap is armed
    out = tmp_path / "out.png"
    main(["decode", str(src), "-o", str(out), "--quiet", "--device", "cpu", *decode_flags])
    assert np.array_equal(np.asarray(Image.open(out)).reshape(expected.shape), expected)
