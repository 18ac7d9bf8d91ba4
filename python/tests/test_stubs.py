"""The type stubs match the package: every catalogue class has a stub class, and every public
native function and System method has a stub entry."""

import ast
import pathlib
import subprocess
import sys

import phaseflow
from phaseflow import _native, flows, maps

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKG = ROOT / "python" / "phaseflow"


def stub_names(path: pathlib.Path) -> tuple[set[str], dict[str, set[str]]]:
    """Top-level functions, classes and annotated constants of a stub, and the members of each
    class."""
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    members: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
        if isinstance(node, ast.ClassDef):
            members[node.name] = {
                n.name for n in node.body if isinstance(n, ast.FunctionDef)
            }
    return top, members


def test_catalogue_stubs_are_in_step():
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_python_stubs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    top, _ = stub_names(PKG / "flows.pyi")
    assert set(flows.__all__) <= top and "Lorenz" in top
    top, _ = stub_names(PKG / "maps.pyi")
    assert set(maps.__all__) <= top and "Henon" in top


def test_native_stub_lists_every_public_function_and_method():
    top, members = stub_names(PKG / "_native.pyi")
    public = {n for n in dir(_native) if not n.startswith("_")}
    missing = {n for n in public if n not in top and n != "PhaseflowError"}
    assert not missing, f"not in _native.pyi: {sorted(missing)}"
    for name in public:
        obj = getattr(_native, name)
        if isinstance(obj, type) and name in members and not issubclass(obj, BaseException):
            methods = {m for m in dir(obj) if not m.startswith("_")}
            gone = methods - members[name]
            assert not gone, f"{name} members not in _native.pyi: {sorted(gone)}"


def test_package_exports_are_importable():
    for name in phaseflow.__all__:
        assert hasattr(phaseflow, name), name
