"""The records every run leaves, as documented (DESIGN.md, "Records every run leaves"):
every metrics entry has every `RECORD_TYPES` key with its type — in the committed results, so
a leaderboard can read them — and literature figures come from one cited table."""
import json
import re

import pytest

from dfd_utils import references
from dfd_utils.paths import notebooks_dir, project_root
from dfd_utils.scores import RECORD_TYPES


def committed_metrics():
    return sorted((project_root() / "results").glob("*/*/metrics.json"))


def check_entries(entries: list[dict], where: str) -> None:
    assert entries, f"{where}: no entries"
    for entry in entries:
        for key, types in RECORD_TYPES.items():
            assert key in entry, f"{where}: {entry.get('method')} · {entry.get('variant')} lacks {key!r}"
            value = entry[key]
            ok = isinstance(value, types) or (float in types and isinstance(value, int) and not isinstance(value, bool))
            assert ok, f"{where}: {key} = {value!r} is not {[t.__name__ for t in types]}"


@pytest.mark.parametrize("path", committed_metrics(), ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_committed_metrics_have_every_documented_key_and_type(path):
    check_entries(json.loads(path.read_text()), str(path))


def test_the_record_check_can_fail():
    with pytest.raises(AssertionError, match="precision"):
        check_entries([{k: 0.5 for k in RECORD_TYPES} | {"method": "m", "variant": "v", "split": "test",
                                                          "n_real": 1, "n_fake": 1, "threshold_rule": "r",
                                                          "pretrained": "none", "precision": "bf16"}], "probe")


def test_the_reference_table_is_cited_and_its_bar_is_a_clean_protocol_figure():
    table = references.table()
    assert table.key.is_unique and table.source.str.len().gt(10).all()
    bar = references.best_bar()
    assert bar.bar and bar.key == "resnet18_128px" and bar.accuracy == 0.9767
    assert not references.get("vit_swin_unclean").bar  # listed with its caveat, never the bar


def test_notebooks_type_no_literature_figure():
    """Reference numbers come from dfd_utils.references, never from a notebook's text."""
    figures = {f"{r.accuracy:.4f}".rstrip("0") for r in references.REFERENCES if r.accuracy} | {"0.99", "92.98", "97.67"}
    for notebook in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        text = "".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"])
        typed = sorted(f for f in figures if re.search(rf"(?<![\d.]){re.escape(f)}(?!\d)", text))
        assert not typed, f"{notebook.name} types literature figures {typed}; use dfd_utils.references"
