"""Run the numbered notebooks headlessly with papermill under a profile.

Parameters are checked before anything runs: a name the notebook does not declare in its
`parameters` cell is an error (papermill itself would only warn). A failing notebook keeps
its partially executed copy in `results/<profile>/`, the failing cell is named, and the run
stops with a non-zero exit.
"""
from __future__ import annotations

import ast
import os
import time
from dataclasses import dataclass
from pathlib import Path

import papermill
import yaml

from .paths import notebooks_dir, results_dir
from .profiles import profile_params
from .runtime import REPORT_ENV

__all__ = ["NotebookJob", "plan", "parameters", "run_notebooks", "parse_value", "ParameterError", "CELL_TIMEOUTS"]

KERNEL = "python3"
# Seconds one cell may run before the run stops, per profile: a guard against a hung cell that
# must stay above the longest cell a profile plans (`full` trains V4 for 2 h in one cell).
CELL_TIMEOUTS = {"smoke": 600, "default": 3600, "full": 4 * 3600}
_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": list, "dict": dict}


class ParameterError(ValueError):
    """A parameter a notebook does not declare, or a value of the wrong type."""


@dataclass(frozen=True)
class NotebookJob:
    source: Path
    output: Path
    parameters: dict

    @property
    def name(self) -> str:
        return self.source.stem


def parse_value(text: str):
    """A command-line value as YAML: `10` → int, `0.5` → float, `true` → bool, `[a, b]` → list,
    `{a: 64}` → dict, else str (the parameter's declared type is checked after)."""
    value = yaml.safe_load(text)
    return text if value is None else value


def _declared(notebook: Path) -> dict:
    """The notebook's parameters cell as papermill reads it: name → type, default, comment."""
    declared = papermill.inspect_notebook(str(notebook))
    if not declared:
        raise ParameterError(f"{notebook.name} has no cell tagged 'parameters'")
    return declared


def _check(notebook: Path, declared: dict, parameters: dict) -> None:
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ParameterError(f"{notebook.name} does not declare {unknown}; it declares {sorted(declared)}")
    for name, value in parameters.items():
        expected = _TYPES.get(declared[name].get("inferred_type_name", "None"))
        if expected and (not isinstance(value, expected) or (expected is not bool and isinstance(value, bool))):
            raise ParameterError(f"{notebook.name}: {name} expects {declared[name]['inferred_type_name']}, "
                                 f"got {value!r}")


def parameters(notebook: str, profile: str) -> dict:
    """Every parameter `notebook` (a file stem such as '02_cnn_zoo') runs with under `profile`:
    its parameters cell's defaults, then the profile's overrides — what a run would inject,
    for code that must size a run before it starts (`bench zoo`)."""
    source = notebooks_dir() / f"{notebook}.ipynb"
    if not source.exists():
        raise ParameterError(f"no notebook {source}")
    declared = _declared(source)
    overrides = {"PROFILE": profile, **profile_params(profile, notebook)}
    _check(source, declared, overrides)
    return {name: ast.literal_eval(spec["default"]) for name, spec in declared.items()} | overrides


def plan(profile: str, only: list[str] | None = None, overrides: dict | None = None) -> list[NotebookJob]:
    """The notebooks to run, in order, with their checked parameters."""
    notebooks = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if only:
        notebooks = [nb for nb in notebooks if any(nb.stem.startswith(prefix) for prefix in only)]
        if not notebooks:
            raise ParameterError(f"no notebook in {notebooks_dir()} starts with any of {only}")
    jobs = []
    for notebook in notebooks:
        parameters = {"PROFILE": profile, **profile_params(profile, notebook.stem), **(overrides or {})}
        _check(notebook, _declared(notebook), parameters)
        jobs.append(NotebookJob(notebook, results_dir(profile) / notebook.name, parameters))
    return jobs


def run_notebooks(profile: str = "default", only: list[str] | None = None, overrides: dict | None = None,
                  cell_timeout: int | None = None) -> bool:
    """Execute the planned notebooks in order; False (after saying why) at the first failure.
    `cell_timeout`: seconds one cell may run (default: the profile's `CELL_TIMEOUTS`)."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    jobs = plan(profile, only, overrides)
    cell_timeout = cell_timeout or CELL_TIMEOUTS[profile]
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    os.environ[REPORT_ENV] = "1"  # the kernels inherit it: no progress bars in the reports
    started = time.perf_counter()
    for index, job in enumerate(jobs, 1):
        job.output.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{index}/{len(jobs)}] {job.name} ({profile}) …", flush=True)
        begin = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(job.source), str(job.output), parameters=job.parameters, kernel_name=KERNEL,
                cwd=str(job.source.parent), execution_timeout=cell_timeout, progress_bar=False,
            )
        except papermill.PapermillExecutionError as error:
            print(f"FAILED {job.name} in cell {error.cell_index} (execution count {error.exec_count}): "
                  f"{error.ename}: {error.evalue}\n  partial notebook: {job.output}", flush=True)
            return False
        except (CellTimeoutError, DeadKernelError) as error:
            print(f"FAILED {job.name}: {type(error).__name__}: {str(error).splitlines()[0]}\n  partial notebook: "
                  f"{job.output}\n  a cell may run {cell_timeout} s here (--cell-timeout); an interrupted training "
                  "resumes from its checkpoint when rerun", flush=True)
            return False
        print(f"    done in {time.perf_counter() - begin:.1f} s → {job.output}", flush=True)
    print(f"all {len(jobs)} notebook(s) done in {time.perf_counter() - started:.1f} s", flush=True)
    return True
