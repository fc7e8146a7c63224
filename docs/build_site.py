"""Build the lessons' web site (`make site`): the README as home page, the notebooks executed, the guides in docs/.

    python docs/build_site.py [--site-dir site] [--lessons '0[12]_*']

Each lesson runs top to bottom with nbclient in notebooks/ (at smoke size when VIDEO_PROCESSING_SMOKE=1) and its
executed copy is kept in site_build/executed/; the next build reuses it while neither the notebook nor the package
changed. The pages are staged in site_build/pages/ with the repository's layout, so relative links between the
README, docs/ and notebooks/ hold as written; links to other files of the repository go to its web page. MkDocs
(mkdocs.yml, Material theme, mkdocs-jupyter) renders the staged pages into --site-dir.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import logging
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import yaml
from mkdocs.commands.build import build
from mkdocs.config import load_config
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from video_processing.lessons.notebook import smoke_mode

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "site_build"
CELL_TIMEOUT_S = 3600
# a markdown link or image target: ](target) or ](target#anchor)
LINK = re.compile(r"(\]\()([^)\s#]+)([^)\s]*\))")
# What a page would load from elsewhere at read time: matplotlib's animations link Font Awesome on a CDN (docs/site.css
# draws their icons instead), and the Colab badge is an image on colab.research.google.com (a text link instead).
FONT_AWESOME = re.compile(r'<link rel="stylesheet"\s+href="https://[^"]*font-awesome[^"]*">\s*')
COLAB_BADGE = re.compile(r"\[!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]")


def lessons(pattern: str = "[0-9][0-9]_*") -> list[Path]:
    """The numbered notebooks matching `pattern`, in order."""
    return sorted((ROOT / "notebooks").glob(f"{pattern}.ipynb"))


def source_key(notebook: Path, smoke: bool) -> str:
    """A hash of the notebook, every file of the package and the size it runs at: what an executed copy depends on."""
    digest = hashlib.sha256(notebook.read_bytes() + (b"smoke" if smoke else b"full"))
    for path in sorted((ROOT / "video_processing").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def machine() -> str:
    """Where a lesson ran, in words: CPU model and cores, GPU, Python and torch versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = models[0] if models else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def execution_note(smoke: bool, seconds: float, error: CellExecutionError | None = None) -> str:
    """The line at the top of a lesson's page: at which size, where, when and how long it ran, or where it stopped."""
    size = "at smoke size (`VIDEO_PROCESSING_SMOKE=1`)" if smoke else "at full size"
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    minutes, secs = divmod(round(seconds), 60)
    took = f"{minutes} min {secs} s" if minutes else f"{secs} s"
    if error is not None:
        return (
            f"**This page was executed {size} on {when}, on {machine()}, and stopped after {took} with "
            f"`{error.ename}: {error.evalue}`: the outputs below end at that cell.**"
        )
    return f"*This page was executed {size} on {when}, on {machine()}, in {took}.*"


def execute(notebook: Path, smoke: bool) -> tuple[Path, CellExecutionError | None]:
    """The executed copy of `notebook` and the error it stopped at (None: it ran through).

    A copy that ran through is reused while its source key matches; one that stopped is run again next time.
    """
    out = WORK / "executed" / f"{notebook.stem}.{'smoke' if smoke else 'full'}.ipynb"
    key = source_key(notebook, smoke)
    if out.is_file() and nbformat.read(out, as_version=4).metadata.get("site_source_key") == key:
        print(f"{notebook.name}: unchanged, reusing {out.relative_to(ROOT)}")
        return out, None
    print(f"{notebook.name}: executing {'at smoke size' if smoke else 'at full size'} ...", flush=True)
    nb = nbformat.read(notebook, as_version=4)
    start, error = time.perf_counter(), None
    try:
        NotebookClient(nb, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(notebook.parent)}}).execute()
    except CellExecutionError as e:  # the page still shows what ran, and says where it stopped
        error = e
    seconds = time.perf_counter() - start
    print(f"{notebook.name}: {seconds:.0f} s" + (f", stopped with {error.ename}: {error.evalue}" if error else ""))
    note = nbformat.v4.new_markdown_cell(execution_note(smoke, seconds, error))
    if nb.nbformat_minor < 5:  # cell ids came with nbformat 4.5
        del note["id"]
    nb.cells.insert(1, note)
    nb.metadata["site_source_key"] = key if error is None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out, error


def fix_links(text: str, source: Path, staged: set[Path], repository: str) -> str:
    """Markdown links of `source` (a file of the repository) that point outside the site go to the `repository`'s
    web page; a link to the README goes to the home page. Links to staged files stay as written."""

    def fix(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"^[a-z]+:", target) or target.startswith("/"):
            return match.group(0)
        path = (source.parent / target).resolve()
        if path == ROOT / "README.md":
            target = os.path.relpath(ROOT / "index.md", source.parent)
        elif path not in staged:
            kind = "tree" if path.is_dir() else "blob"
            target = f"{repository}/{kind}/main/{path.relative_to(ROOT).as_posix()}"
        return match.group(1) + target + match.group(3)

    return LINK.sub(fix, text)


def stage(executed: dict[Path, Path], repository: str) -> Path:
    """Copy the README, docs/ (but this script) and the executed lessons into site_build/pages/, links fixed."""
    pages = WORK / "pages"
    shutil.rmtree(pages, ignore_errors=True)
    (pages / "docs").mkdir(parents=True)
    (pages / "notebooks").mkdir()
    docs = [path for path in (ROOT / "docs").iterdir() if path.is_file() and path.suffix != ".py"]
    staged = {*docs, *executed}
    readme = ROOT / "README.md"
    (pages / "index.md").write_text(fix_links(readme.read_text(), readme, staged, repository))
    for path in docs:
        if path.suffix == ".md":
            (pages / "docs" / path.name).write_text(fix_links(path.read_text(), path, staged, repository))
        else:
            shutil.copy(path, pages / "docs" / path.name)
    for notebook, copy in executed.items():
        nb = nbformat.read(copy, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = COLAB_BADGE.sub("[Open in Colab]", fix_links(cell.source, notebook, staged, repository))
            for output in cell.get("outputs", []):
                if "text/html" in output.get("data", {}):
                    output.data["text/html"] = FONT_AWESOME.sub("", output.data["text/html"])
        nbformat.write(nb, pages / "notebooks" / notebook.name)
    return pages


def navigation(lesson_names: list[str]) -> list[dict]:
    """Home, the lessons in order, then the guides in the order the README links them (any it does not, last)."""
    guides = sorted(path.name for path in (ROOT / "docs").glob("*.md"))
    linked = re.findall(r"\]\(docs/([\w-]+\.md)", (ROOT / "README.md").read_text())
    order = list(dict.fromkeys(name for name in linked if name in guides))
    order += [name for name in guides if name not in order]
    return [
        {"Home": "index.md"},
        {"Lessons": [f"notebooks/{name}" for name in lesson_names]},
        {"Guides": [f"docs/{name}" for name in order]},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site-dir", type=Path, default=ROOT / "site", help="where the built site goes")
    parser.add_argument(
        "--lessons",
        default="[0-9][0-9]_*",
        help="the notebooks to build, a glob (e.g. '02_*' for a quick look at one); the others link to the repository",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    site_dir = args.site_dir.resolve()
    os.chdir(ROOT)  # mkdocs.yml's paths are relative to the checkout
    start = time.perf_counter()
    smoke = smoke_mode()
    runs = {notebook: execute(notebook, smoke) for notebook in lessons(args.lessons)}
    executed = {notebook: copy for notebook, (copy, _) in runs.items()}
    repository = yaml.safe_load(Path("mkdocs.yml").read_text())["repo_url"]
    pages = stage(executed, repository)
    nav = navigation([notebook.name for notebook in executed])
    build(load_config("mkdocs.yml", docs_dir=str(pages), site_dir=str(site_dir), nav=nav))
    print(f"site built in {args.site_dir} in {time.perf_counter() - start:.0f} s")
    if stopped := [f"{notebook.name} ({error.ename})" for notebook, (_, error) in runs.items() if error]:
        sys.exit(f"lessons that stopped with an error (their pages say where): {', '.join(stopped)}")


if __name__ == "__main__":
    main()
