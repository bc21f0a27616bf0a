"""The README's results table is generated from the committed records and must match them."""
from dfd_utils import report
from dfd_utils.paths import project_root


def test_committed_readme_leaderboard_matches_the_committed_records(monkeypatch):
    monkeypatch.delenv("DFD_RESULTS")  # the committed records, not the tests' temporary results folder
    readme = (project_root() / "README.md").read_text()
    expected = report.readme_section("default")
    assert expected in readme, ("README.md's results table is stale against results/default: run "
                                "`python -m dfd_utils leaderboard --write-readme` (make leaderboard)")


def test_write_readme_replaces_only_the_generated_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_START}\nold table\n{report.README_END}\nrest\n")
    report.write_readme("default", readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\nrest\n") and "old table" not in text
    assert report.readme_section("default") in text


def test_measured_on_names_the_cpu_flags_and_limits_or_the_gpu():
    from dfd_utils.runtime import measured_on

    env = {"device": "cpu", "cpu": "AMD EPYC", "cpu_count": 2, "gpu": None,
           "cpu_flags": {"avx2": True, "avx512f": False, "avx512_bf16": False, "amx_bf16": False}, "cpu_isa_limits": {}}
    assert measured_on(env) == "2-core AMD EPYC (AVX2)"
    limited = env | {"cpu_flags": dict.fromkeys(env["cpu_flags"], True), "cpu_isa_limits": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
    assert measured_on(limited) == "2-core AMD EPYC (AVX2, AVX-512, AVX512-BF16, AMX), kernels limited by ONEDNN_MAX_CPU_ISA=AVX2"
    assert measured_on(env | {"device": "cuda", "gpu": "NVIDIA H200"}) == "NVIDIA H200"


def test_the_readme_prose_names_each_machine_with_its_detectors():
    import pandas as pd

    one = pd.DataFrame({"detector": ["v3", "v4"], "measured_on": ["2-core Xeon", "2-core Xeon"]})
    assert report._machines(one) == "on a 2-core Xeon"
    two = one.assign(measured_on=["2-core Xeon", "2-core EPYC (AVX2)"])
    assert report._machines(two) == ("on the machine of each detector's notebook: `v4` on a 2-core EPYC (AVX2); "
                                     "`v3` on a 2-core Xeon")


def test_an_ensemble_costs_its_members_and_names_all_their_machines():
    import pandas as pd

    table = pd.DataFrame({"detector": ["v3", "v4", "ensemble"], "train_seconds": [60.0, 120.0, None],
                          "params": [10, 20, 0], "measured_on": ["2-core Xeon", "2-core Xeon", "2-core EPYC (AVX2)"]})
    costed = report._with_members_cost(table, {"v3": None, "v4": None, "ensemble": ["v3", "v4"]}).set_index("detector")
    assert costed.loc["ensemble", "train_seconds"] == 180 and costed.loc["ensemble", "params"] == 30
    assert costed.loc["ensemble", "measured_on"] == "2-core EPYC (AVX2) + 2-core Xeon"
    same = report._with_members_cost(table.assign(measured_on="2-core Xeon"), {"ensemble": ["v3", "v4"]})
    assert same.set_index("detector").loc["ensemble", "measured_on"] == "2-core Xeon"
