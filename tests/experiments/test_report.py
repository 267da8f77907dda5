"""``memcim report``: the HTML page parses strictly (and loads in Chromium when installed)."""

import shutil
import subprocess

import html5lib
import pytest

from memcim import ConfigError
from memcim.experiments.report import write_report
from memcim.experiments.runner import run_experiment
from memcim.experiments.sweep import run_sweep

SMALL = {"rows": "32", "cols": "8", "batch": "8"}


def _strict_parse(path):
    # html5lib's strict mode raises on any parse error of the HTML5 spec.
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(path.read_text())


def test_sweep_report_has_mean_and_std_over_seeds_and_valid_html(tmp_path):
    grid = {"t_s": ["1", "3600"], **{k: [v] for k, v in SMALL.items()}}
    records = run_sweep("mvm-error", tmp_path, grid, seeds=[0, 1, 2])
    md, page = write_report(tmp_path)
    doc = _strict_parse(page)
    cells = [td.text for td in doc.iter("td")]
    values = [r["metrics"]["mvm_error"] for r in records if r["params"]["t_s"] == "1"]
    mean = sum(values) / 3
    assert any(c.startswith(f"{mean:.4g} ± ") for c in cells), cells
    for img in doc.iter("img"):
        assert (tmp_path / img.get("src")).exists()
    assert "| t_s |" in md.read_text().replace("batch | cols | rows | ", "")


def test_run_report(tmp_path):
    run_experiment("mvm-error", tmp_path, assignments=SMALL, seed=0)
    _, page = write_report(tmp_path)
    doc = _strict_parse(page)
    assert next(td.text for td in doc.iter("td")) == "mvm_error"


def test_report_of_an_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="nothing to report"):
        write_report(tmp_path)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_report_opens_in_headless_chromium(tmp_path):
    run_sweep("mvm-error", tmp_path, {k: [v] for k, v in SMALL.items()}, seeds=[0, 1])
    _, page = write_report(tmp_path)
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chrome'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Sweep of mvm-error" in result.stdout and "<table>" in result.stdout
