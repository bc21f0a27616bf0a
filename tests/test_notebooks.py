"""Every notebook, end to end through the runner, with the smoke profile on a fixture dataset.

The notebooks run once, in order, in one results folder (later notebooks reuse models that
earlier ones saved), then each one's report and records are checked."""
import json
import os
import subprocess
import sys

import pytest

from dfd_utils.paths import notebooks_dir

NOTEBOOKS = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def smoke_results(cifake_zip, tmp_path_factory):
    base = tmp_path_factory.mktemp("smoke")
    env = {**os.environ, "DFD_CIFAKE": str(cifake_zip), "DFD_CACHE": str(base / "cache"),
           "DFD_RESULTS": str(base / "results"), "DFD_CHECKPOINTS": str(base / "checkpoints"), "DFD_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "dfd_utils", "run", "--profile", "smoke"],
                            env=env, capture_output=True, text=True, timeout=1200)
    return result, base / "results" / "smoke"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_smoke_run(notebook, smoke_results):
    result, results = smoke_results
    assert result.returncode == 0, result.stdout + result.stderr
    executed = json.loads((results / notebook.name).read_text())
    assert not [o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    records = results / notebook.stem
    assert json.loads((records / "params.json").read_text())["PROFILE"] == "smoke"
    assert json.loads((records / "env.json").read_text())["git"]
    shown = sum("image/png" in o.get("data", {}) for c in executed["cells"] for o in c.get("outputs", []))
    saved = len(list((records / "figures").glob("*.png"))) if (records / "figures").exists() else 0
    assert saved >= shown > 0, "every figure the notebook shows must also be saved"
    if (records / "metrics.json").exists():
        entries = json.loads((records / "metrics.json").read_text())
        assert entries and all({"method", "variant", "split", "acc", "auroc", "pretrained"} <= set(e) for e in entries)


@pytest.mark.slow
def test_failing_notebook_keeps_partial_output_and_exits_nonzero(isolated_paths, tmp_path):
    env = {**os.environ, "DFD_CIFAKE": str(tmp_path / "missing.zip")}
    result = subprocess.run([sys.executable, "-m", "dfd_utils", "run", "--profile", "smoke", "--only", "00"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert "FAILED 00_data_audit in cell" in result.stdout and "DataError" in result.stdout
    assert (isolated_paths / "results" / "smoke" / "00_data_audit.ipynb").exists()


@pytest.mark.slow
def test_leaderboard_and_detectors_from_the_smoke_records(smoke_results, monkeypatch):
    from dfd_utils import detectors, report

    _, results = smoke_results
    monkeypatch.setenv("DFD_RESULTS", str(results.parent))
    saved = detectors.available("smoke")
    assert {"v1", "v2", "v3", "v4", "dire", "aeroblade", "aeroblade-native", "ensemble"} <= set(saved)
    board = report.leaderboard("smoke")
    assert set(board.detector) >= {"v1", "v2", "v3", "v4", "dire", "aeroblade", "ensemble"}
    assert board.auroc.is_monotonic_decreasing and (board.params >= 0).all()
    assert board.measured_on.notna().all()  # every time says which machine it was measured on
    rows = board.set_index("detector")
    members = ["v2", "v3", "v4"]  # notebook 99's ensemble: it costs what its members cost
    assert rows.loc["ensemble", "params"] == rows.loc[members, "params"].sum() > 0
    assert rows.loc["ensemble", "train_seconds"] == pytest.approx(rows.loc[members, "train_seconds"].sum())
    from dfd_utils import xdomain

    if xdomain.find() is not None:  # 99 scored the cross-domain set: every detector has that entry
        assert rows.n_xdomain.notna().all()
    assert "| `v4` |" in report.markdown(board)


@pytest.mark.slow
def test_html_index_opens_in_a_real_browser_with_every_link_and_headline(smoke_results, monkeypatch, tmp_path):
    import re
    import shutil

    from dfd_utils import report

    _, results = smoke_results
    monkeypatch.setenv("DFD_RESULTS", str(results.parent))
    index = report.build_html("smoke", tmp_path / "html")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")

    def render(page):
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
        shown = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr[-2000:]
        return shown.stdout

    dom = render(index)
    links = re.findall(r'href="([^"]+\.html)"', dom)
    assert sorted(links) == sorted(f"{nb.stem}.html" for nb in NOTEBOOKS)
    for notebook in NOTEBOOKS:
        headline = report.headline("smoke", notebook.stem)
        if headline != "no scores recorded":
            assert re.search(r"AUROC [0-9.]+", headline).group() in dom  # each headline number, as rendered
    for link in links:
        page = index.parent / link
        assert page.exists() and "jp-Notebook" in render(page)  # every link resolves to a rendered report
