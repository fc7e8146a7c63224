"""Notebooks as committed: no outputs, a title, a Colab badge and install cell for the one repository URL."""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REPOSITORY = re.search(r'^Repository = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)


def test_the_six_lessons_are_there():
    assert [path.name for path in NOTEBOOKS] == [
        "01_clip_sampling.ipynb",
        "02_transforms.ipynb",
        "03_training.ipynb",
        "04_validation_metrics.ipynb",
        "05_finetuning_and_inference.ipynb",
        "06_your_own_videos.ipynb",
    ]


@pytest.fixture(params=NOTEBOOKS, ids=lambda path: path.name)
def notebook(request):
    return request.param.name, nbformat.read(request.param, as_version=4)


def test_committed_without_outputs(notebook):
    _, nb = notebook
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
        assert "widgets" not in cell.metadata


def test_opens_with_a_title_and_the_colab_badge(notebook):
    name, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    colab = REPOSITORY.replace("https://github.com/", "https://colab.research.google.com/github/")
    assert f"]({colab}/blob/main/notebooks/{name})" in first.source
    assert "colab-badge.svg" in first.source


def test_install_cell_runs_only_on_colab_and_keeps_its_torch(notebook):
    _, nb = notebook
    install = nb.cells[1]
    assert install.cell_type == "code"
    assert 'if "google.colab" in sys.modules:' in install.source
    pip_lines = [line for line in install.source.splitlines() if "%pip install" in line]
    assert len(pip_lines) == 1 and pip_lines[0].startswith("    ")  # inside the Colab branch
    assert f'"video-classification @ git+{REPOSITORY}"' in pip_lines[0]
    assert "-c /tmp/keep_colab_torch.txt" in pip_lines[0]  # pins Colab's torch and torchvision


def test_no_other_repository_address(notebook):
    _, nb = notebook
    text = "\n".join(cell.source for cell in nb.cells)
    owners = set(re.findall(r"github(?:\.com)?/([\w.-]+/[\w.-]+)", text))
    assert owners == {REPOSITORY.removeprefix("https://github.com/")}


def _source(name: str) -> str:
    return "\n".join(cell.source for cell in nbformat.read(ROOT / "notebooks" / name, as_version=4).cells)


def test_training_lesson_writes_out_the_lightning_objects_and_draws_its_curves():
    source = _source("03_training.ipynb")
    for call in (
        "KineticsDataModule(",
        "VideoClassificationLightningModule(",
        "pl.Trainer(",
        "trainer.fit(model, data)",
    ):
        assert call in source
    assert "TensorBoardLogger(" in source and "ModelCheckpoint(" in source
    assert "plot_training_curves(" in source


def test_evaluation_lesson_uses_the_trainer_not_a_hand_loop():
    source = _source("04_validation_metrics.ipynb")
    assert ".validate(" in source and ".test(" in source and ".predict(" in source
    assert "confident_mistakes(" in source


def test_finetuning_lesson_writes_out_its_callback():
    assert "BackboneFinetuning(" in _source("05_finetuning_and_inference.ipynb")


def test_own_videos_lesson_splits_trains_tests_and_explains():
    source = _source("06_your_own_videos.ipynb")
    calls = ("split_folder(", "trainer.fit(model, data)", "trainer.test(", "explain_clip(", "render_annotated(")
    for call in (*calls, "plot_gradcam_frames("):
        assert call in source
    assert "MY_FOLDER = None" in source and "GROUP_PATTERN" in source


def test_every_lesson_ends_by_checking_its_outcome(notebook):
    _, nb = notebook
    check = nb.cells[-2]
    assert check.cell_type == "code" and check.source.startswith("# What this lesson must produce")
    assert "assert " in check.source
