import json
import re
import subprocess
import sys

import pytest

from dfd_utils.paths import notebooks_dir
from dfd_utils.profiles import PROFILES, load_profiles
from dfd_utils.runner import ParameterError, parameters, parse_value, plan

NOTEBOOKS = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def test_parse_value():
    assert parse_value("10") == 10 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("resnet18") == "resnet18" and parse_value("") == ""
    assert parse_value("[resnet18, cifar_resnet20]") == ["resnet18", "cifar_resnet20"]
    assert parse_value("{tf_efficientnet_lite0: 128}") == {"tf_efficientnet_lite0": 128}


def test_a_list_parameter_from_the_command_line_is_a_list_and_its_type_is_checked():
    assert plan("smoke", ["02"], {"BACKBONES": parse_value("[resnet18]")})[0].parameters["BACKBONES"] == ["resnet18"]
    with pytest.raises(ParameterError, match="BACKBONES expects list"):
        plan("smoke", ["02"], {"BACKBONES": parse_value("resnet18")})


def test_unknown_parameter_is_an_error():
    with pytest.raises(ParameterError, match="does not declare \\['NOT_A_PARAMETER'\\]"):
        plan("smoke", ["00"], {"NOT_A_PARAMETER": 1})


def test_wrong_type_is_an_error():
    with pytest.raises(ParameterError, match="SEED expects int"):
        plan("smoke", ["00"], {"SEED": "zero"})


def test_unknown_prefix_and_profile():
    with pytest.raises(ParameterError, match="no notebook"):
        plan("smoke", ["77"])
    with pytest.raises(ValueError, match="unknown profile"):
        plan("bogus")


def test_profiles_name_only_declared_parameters():
    for profile in PROFILES:
        plan(profile)  # raises on any undeclared name
    assert set(load_profiles()) == set(PROFILES)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_source_is_clean(notebook):
    """Committed without outputs; every line of the parameters cell is a parsed, commented parameter."""
    import papermill

    cells = json.loads(notebook.read_text())["cells"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in cells if c["cell_type"] == "code")
    parameters = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(parameters) == 1
    lines = [l for l in "".join(parameters[0]["source"]).splitlines() if l.strip()]
    declared = papermill.inspect_notebook(str(notebook))
    assert len(declared) == len(lines), "a parameters line papermill cannot parse (e.g. '=' in a comment)"
    assert all(re.match(r"^[A-Z_0-9]+: \w+ = .+  # .+", line) for line in lines)
    assert "PROFILE" in declared and "SEED" in declared


def test_parameters_are_the_notebooks_defaults_under_the_profiles_overrides():
    smoke, default = parameters("02_cnn_zoo", "smoke"), parameters("02_cnn_zoo", "default")
    assert default["PROFILE"] == "default" and default["TRAIN_PER_CLASS"] == 8000  # the parameters cell's value
    assert smoke["TRAIN_PER_CLASS"] == load_profiles()["smoke"]["02_cnn_zoo"]["TRAIN_PER_CLASS"]
    assert set(smoke) == set(default) and smoke["SEED"] == default["SEED"]
    with pytest.raises(ParameterError, match="no notebook"):
        parameters("77_nothing", "smoke")


def test_cli_rejects_unknown_parameter():
    result = subprocess.run([sys.executable, "-m", "dfd_utils", "run", "--profile", "smoke", "--only", "00",
                             "-p", "BOGUS", "1"], capture_output=True, text=True)
    assert result.returncode == 2 and "BOGUS" in result.stderr


def test_every_planned_budget_fits_its_profiles_cell_timeout():
    """A training budget runs in one cell: the cell timeout must leave room for it (and more)."""
    from dfd_utils.runner import CELL_TIMEOUTS

    for profile in PROFILES:
        for job in plan(profile):
            budgets = {name: value for name, value in job.parameters.items() if name.endswith("_MINUTES")}
            for name, minutes in budgets.items():
                assert 1.5 * 60 * minutes <= CELL_TIMEOUTS[profile], f"{profile} {job.name} {name}={minutes} min"


@pytest.mark.slow
def test_a_cell_past_the_timeout_stops_the_run_with_its_reason(tmp_path, monkeypatch, isolated_paths, capsys):
    import nbformat

    from dfd_utils import runner

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('PROFILE: str = "smoke"  # profile', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import time\ntime.sleep(60)")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, tmp_path / "98_sleep.ipynb")
    monkeypatch.setattr(runner, "notebooks_dir", lambda: tmp_path)
    assert not runner.run_notebooks("smoke", cell_timeout=3)
    said = capsys.readouterr().out
    assert "FAILED 98_sleep: CellTimeoutError" in said and "--cell-timeout" in said
    assert (isolated_paths / "results" / "smoke" / "98_sleep.ipynb").exists()
