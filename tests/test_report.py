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
