"""What the guides name exists: the package's Python names, the sections they point to, the logged metrics."""

from __future__ import annotations

import csv
import importlib
import re
from dataclasses import replace
from pathlib import Path

from conftest import SMALL_DATA_KWARGS

from video_processing.lessons import runs

ROOT = Path(__file__).parents[1]
GUIDES = [ROOT / "README.md", ROOT / "data" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FILE_SUFFIXES = {"py", "json", "csv", "yaml", "md", "txt", "ckpt"}
MODULES = {path.stem: path for path in (ROOT / "video_processing").rglob("*.py") if path.stem != "__init__"}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def test_the_python_names_the_guides_give_exist():
    """`backbones.BACKBONES`, `runs.load_latest`, ...: a module of the package, dot, a name it defines."""
    named = {
        (module, name)
        for guide in GUIDES
        for module, name in re.findall(r"`(\w+)\.([A-Za-z_]\w*)", guide.read_text())
        if module in MODULES and name not in FILE_SUFFIXES  # `loaders.py`, `shards.json`: files
    }
    assert ("runs", "load_latest") in named
    missing = [
        f"{module}.{name}"
        for module, name in sorted(named)
        if not hasattr(importlib.import_module(_module_name(MODULES[module])), name)
    ]
    assert not missing, f"the guides name what the package does not define: {missing}"


def test_the_sections_the_guides_and_configs_point_to_exist():
    """`README's "Title"`, `README "Title"` and `docs/x.md's "Title"` / `docs/x.md, "Title"` are headings there."""
    pointers = []
    for text_file in [*GUIDES, *sorted((ROOT / "configs").glob("*.yaml"))]:
        text = text_file.read_text()
        pointers += [(ROOT / "README.md", title) for title in re.findall(r"README(?:'s)? \"([^\"]+)\"", text)]
        pointers += [(ROOT / doc, title) for doc, title in re.findall(r"(docs/[\w-]+\.md)(?:'s|,) \"([^\"]+)\"", text)]
    assert pointers
    missing = [
        f"{doc.name}: {title}"
        for doc, title in pointers
        if not re.search(rf"^#+ {re.escape(title)}$", doc.read_text(), re.M)
    ]
    assert not missing, f"pointers to sections that do not exist: {missing}"


def test_the_metrics_the_guide_says_are_logged_are_columns_of_metrics_csv(small_dataset, tmp_path):
    guide = (ROOT / "docs" / "training-and-data.md").read_text()
    paragraph = guide[guide.index("**`VideoClassificationLightningModule`**") :].split("\n\n")[0]
    named = {name for name in re.findall(r"`((?:train|val)_\w+)`", paragraph)}
    assert {"train_loss_step", "train_loss_epoch", "val_loss", "val_video_acc_top5"} <= named
    run = replace(runs.SMOKE, name="tiny", **SMALL_DATA_KWARGS, stem_dim_out=4, batch_size=6, max_epochs=1)
    data = runs.build_data(small_dataset, replace(run, limit_batches=1))
    runs.build_trainer(replace(run, limit_batches=1), tmp_path).fit(runs.build_model(data, run), data)
    with open(tmp_path / "tiny" / "version_0" / "metrics.csv", newline="") as f:
        columns = set(next(csv.reader(f)))
    assert named <= columns, f"named in the guide, not logged: {sorted(named - columns)}"
