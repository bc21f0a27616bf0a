"""The package's layers (README, "Layout"): tools at the bottom, one module per method above
them, orchestration on top. A method imports tools only — never another method, never the
records or the orchestration layer — and a tool never imports a method or orchestration."""
import ast
from pathlib import Path

import pytest

import dfd_utils
from dfd_utils import methods

PACKAGE = Path(dfd_utils.__file__).parent
ORCHESTRATION = set(dfd_utils.ORCHESTRATION)
RECORDS = {"runs"}  # what a caller records with: a method returns values instead


def imported_modules(path: Path) -> set[str]:
    """The dfd_utils modules a file imports (first component below the package, or methods.<name>)."""
    tree = ast.parse(path.read_text())
    here = list(path.relative_to(PACKAGE).parts[:-1])  # [] for dfd_utils/x.py, ["methods"] for dfd_utils/methods/x.py
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb to the package root, then descend
                parts = here[:len(here) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("dfd_utils"):
                parts = node.module.split(".")[1:]
            else:
                continue
            names = [alias.name for alias in node.names]
            if not parts:  # from . import x  /  from .. import x
                found.update(names)
            elif parts[0] == "methods" and len(parts) == 1:
                found.update(f"methods.{name}" for name in names)
            else:
                found.add(".".join(parts[:2]) if parts[0] == "methods" else parts[0])
        elif isinstance(node, ast.Import):
            found.update(".".join(a.name.split(".")[1:3]) for a in node.names if a.name.startswith("dfd_utils."))
    return found


METHOD_FILES = sorted((PACKAGE / "methods").glob("[a-z]*.py"))
TOOL_FILES = [PACKAGE / f"{name}.py" for name in dfd_utils.TOOLS if (PACKAGE / f"{name}.py").exists()] + \
    sorted((PACKAGE / "models").glob("*.py"))


def test_every_method_module_is_listed():
    assert sorted(p.stem for p in METHOD_FILES) == sorted(methods.METHODS)


@pytest.mark.parametrize("path", METHOD_FILES, ids=lambda p: p.stem)
def test_a_method_imports_tools_only(path):
    imported = imported_modules(path)
    other_methods = {m for m in imported if m.startswith("methods.") and m != f"methods.{path.stem}"}
    assert not other_methods, f"{path.stem} imports other methods: {sorted(other_methods)}"
    assert not imported & (ORCHESTRATION | RECORDS), f"{path.stem} imports {sorted(imported & (ORCHESTRATION | RECORDS))}"


@pytest.mark.parametrize("path", TOOL_FILES, ids=lambda p: p.stem)
def test_a_tool_imports_no_method_and_no_orchestration(path):
    imported = imported_modules(path)
    assert not {m for m in imported if m.startswith("methods")}, f"{path.stem} imports a method"
    assert not imported & ORCHESTRATION, f"{path.stem} imports {sorted(imported & ORCHESTRATION)}"


def test_the_checker_sees_relative_imports(tmp_path):
    """The test above must be able to fail: a method importing a method is caught."""
    bad = PACKAGE / "methods" / "_probe_bad.py"
    bad.write_text("from . import dire\nfrom ..runs import Run\nfrom ..metrics import evaluate\n")
    try:
        assert imported_modules(bad) == {"methods.dire", "runs", "metrics"}
    finally:
        bad.unlink()
