"""Executed lessons and the command-line tools print what the learner needs: no library warnings, no adverts, no
progress-bar walls, the model summary once."""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
BAR = re.compile(r"\d+%\||it/s\]|s/it\]")  # a tqdm bar's redraw


def _printed(nb) -> tuple[str, str]:
    """Everything the executed notebook's cells printed: stdout, then stderr."""
    streams = {"stdout": [], "stderr": []}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                streams[output.name].append(output.text)
    return "".join(streams["stdout"]), "".join(streams["stderr"])


def test_training_lesson_executed_unattended_is_quiet(monkeypatch):
    monkeypatch.setenv("VIDEO_PROCESSING_SMOKE", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    nb = nbformat.read(ROOT / "notebooks" / "03_training.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    out, err = _printed(nb)
    text = out + err
    assert "Warning" not in text and "warnings.warn" not in text, err
    assert "Tip:" not in text
    assert not BAR.search(text), "progress-bar redraws on an executed page"
    epochs = re.findall(r"^epoch (\d+)/(\d+) ", out, re.M)
    assert epochs and len(epochs) == int(epochs[0][1])  # one line per epoch
    assert text.count("Trainable params") == 0  # the summary is the ModelSummary cell's table, printed once
    summaries = [
        output
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if "Total params" in str(output.get("data", {}).get("text/plain", ""))
    ]
    assert len(summaries) == 1
    assert "above chance" in out or "not checked" in out  # the check's verdict
    assert "timed on a few real steps" in out
    for cell in nb.cells:  # no stray values: a repr with an address, an `Out: 0`
        for output in cell.get("outputs", []):
            shown = str(output.get("data", {}).get("text/plain", ""))
            assert " at 0x" not in shown and shown.strip() != "0", shown


def test_predict_help_starts_with_its_usage():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "video_processing.predict", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert result.stdout.startswith("usage:") and result.stderr == ""
