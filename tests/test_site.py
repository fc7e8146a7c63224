"""The lessons' web site, built at smoke size and read in headless Chromium: figures decoded, animations playing,
internal links resolving, no console error. `make site` builds it at full size (docs/build_site.py)."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import nbformat
import pytest
import tomllib
import yaml

ROOT = Path(__file__).parents[1]
CHROMIUM = shutil.which("chromium")
# Flags for a container running as root, with nothing reaching out to Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def lesson_names() -> list[str]:
    return [path.stem for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def find_chromium() -> str:
    """Debian's chromium (apt-get install chromium), or a skip saying how to install it. `.ci/run` installs it and
    sets VIDEO_PROCESSING_REQUIRE_BROWSER=1, which turns the skip into a failure: there the browser test must run."""
    if CHROMIUM is None:
        reason = "chromium is not installed: apt-get install -y --no-install-recommends chromium"
        if os.environ.get("VIDEO_PROCESSING_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (VIDEO_PROCESSING_REQUIRE_BROWSER=1: this run must read the site in a browser)")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


def test_the_ci_run_cannot_skip_the_browser_test(monkeypatch):
    (command,) = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.endswith("make test")]
    assert "VIDEO_PROCESSING_REQUIRE_BROWSER=1" in command.split()
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", None)
    monkeypatch.setenv("VIDEO_PROCESSING_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="must read the site in a browser"):
        find_chromium()


@pytest.fixture(scope="module")
def site_url(tmp_path_factory, chromium) -> str:
    """The site built at smoke size into a temporary folder, served by http.server on 127.0.0.1."""
    site = tmp_path_factory.mktemp("site")
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "VIDEO_PROCESSING_SMOKE": "1", "PYTHONPATH": python_path}
    subprocess.run([sys.executable, "docs/build_site.py", "--site-dir", str(site)], cwd=ROOT, env=env, check=True)
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # Chromium drops connections it no longer needs
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    # Playwright starts Chromium headless with a new empty profile; Debian's build replaces its downloaded one.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _is_local(url: str) -> bool:
    return urlparse(url).hostname == "127.0.0.1" or url.startswith("data:")


def visit(browser, url: str):
    """Open `url` at 1280 x 800 with requests off 127.0.0.1 refused: the site reads offline, so none is made.

    Returns the page and the problems seen: requests off 127.0.0.1 (a CDN, a badge), console errors, uncaught
    exceptions, local responses >= 400.
    """
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems = []
    page.on("request", lambda r: _is_local(r.url) or problems.append(f"request off 127.0.0.1: {r.url}"))
    page.route(re.compile(r"^(?!http://127\.0\.0\.1[:/]|data:)"), lambda route: route.abort())
    page.on(
        "console",
        lambda msg: msg.type == "error" and _is_local(msg.location.get("url", url)) and problems.append(msg.text),
    )
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on("response", lambda r: r.status >= 400 and _is_local(r.url) and problems.append(f"{r.status} {r.url}"))
    page.goto(url, wait_until="load")
    return page, problems


def local_links(page) -> set[str]:
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    return {urldefrag(href).url for href in hrefs if urlparse(href).hostname == "127.0.0.1"}


def test_site_lessons_read_in_a_browser(site_url, browser):
    home, problems = visit(browser, site_url)
    assert not problems, problems
    links = local_links(home)
    for name in lesson_names():
        url = f"{site_url}notebooks/{name}/"
        assert url in links, f"the home page does not link lesson {name}"
        page, problems = visit(browser, url)
        assert "This page was executed at smoke size" in page.inner_text("article"), f"{name}: no execution note"
        figures = page.eval_on_selector_all(
            ".jp-OutputArea-output img", "images => images.map(i => [i.src.slice(0, 40), i.naturalWidth])"
        )
        assert figures, f"{name}: no figure in the outputs"
        assert all(width > 0 for _, width in figures), f"{name}: figures not decoded: {figures}"
        check_animations(page, name)
        check_width(page, name)
        assert not problems, f"{name}: {problems}"
        links |= local_links(page)
        page.close()
    home.close()
    for link in sorted(links):
        try:
            urllib.request.urlopen(link, timeout=10).close()
        except urllib.error.HTTPError as error:
            pytest.fail(f"{link}: {error.code}")


def test_executed_lessons_print_no_warning_and_no_stray_value(site_url):
    """Every lesson as the site executed it: no Python warning on stderr, no stray value (`Out: 0`, a repr with an
    address) under a cell."""
    for name in lesson_names():
        nb = nbformat.read(ROOT / "site_build" / "executed" / f"{name}.smoke.ipynb", as_version=4)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                if output.output_type == "stream" and output.name == "stderr":
                    assert "Warning" not in output.text, f"{name}: {output.text}"
                if output.output_type == "execute_result":
                    shown = output.data.get("text/plain", "").strip()
                    assert " at 0x" not in shown and not shown.lstrip("-").isdigit(), f"{name}: Out: {shown}"


def check_animations(page, name: str) -> None:
    """Matplotlib's JavaScript animations show a decoded frame and step to the next; videos have their metadata."""
    for animation in page.query_selector_all(".animation"):
        image = animation.query_selector("img")
        page.wait_for_function("img => img.naturalWidth > 0", arg=image, timeout=10_000)
        frames = int(animation.query_selector(".anim-slider").get_attribute("max")) + 1
        if frames > 1:
            animation.query_selector("button[title='Pause']").dispatch_event("click")
            animation.query_selector("button[title='First frame']").dispatch_event("click")
            first = image.get_attribute("src")
            animation.query_selector("button[title='Next frame']").dispatch_event("click")
            assert image.get_attribute("src") != first, f"{name}: the animation does not step"
    for video in page.query_selector_all("video"):
        page.wait_for_function("v => v.readyState >= 1 || v.error", arg=video, timeout=10_000)
        assert video.evaluate("v => !v.error && v.videoWidth > 0"), f"{name}: a video does not load"


def check_width(page, name: str) -> None:
    """At 1280 px a lesson has no right-hand table of contents and its column takes the rest of the width (beside
    the navigation), enough for a three-panel figure and a 120-character line of code."""
    toc = page.query_selector(".md-sidebar--secondary")
    assert toc is None or not toc.is_visible(), f"{name}: a table of contents beside the lesson"
    column = page.eval_on_selector(".md-content", "c => c.getBoundingClientRect().width")
    assert column >= 960, f"{name}: the lesson column is {column:.0f} px wide at 1280 px"


def test_pages_workflow_publishes_what_was_built_and_shows_a_stop():
    """A lesson that stops leaves a site: the workflow uploads and deploys it, then fails a job naming the stop."""
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())["jobs"]
    steps = jobs["build"]["steps"]
    site = next(step for step in steps if step.get("run") == "make site")
    assert (
        site["continue-on-error"] is True
        and jobs["build"]["outputs"]["site"] == f"${{{{ steps.{site['id']}.outcome }}}}"
    )
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert steps.index(upload) > steps.index(site) and "if" not in upload
    assert jobs["deploy"]["needs"] == "build"
    stop = jobs["lessons"]
    assert stop["if"] == "always()" and set(stop["needs"]) == {"build", "deploy"}
    failing = next(step for step in stop["steps"] if "exit 1" in step.get("run", ""))
    assert failing["if"] == "needs.build.outputs.site != 'success'" and "::error" in failing["run"]


def test_readme_says_the_workflow_publishes_the_site():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    paragraph = next(p for p in (ROOT / "README.md").read_text().split("\n\n") if config["site_url"] in p)
    assert ".github/workflows/pages.yml" in paragraph and "publishes" in paragraph


def test_site_addresses_agree_with_the_readme_and_pyproject():
    """mkdocs.yml's repository is pyproject's, and the README links the site at mkdocs.yml's address."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert config["repo_url"] == repository
    owner, name = urlparse(repository).path.strip("/").split("/")
    assert config["site_url"] == f"https://{owner}.github.io/{name}/"
    assert config["site_url"] in (ROOT / "README.md").read_text()


def test_a_lesson_that_stops_is_published_up_to_its_error_and_is_run_again_next_time(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "docs" / "build_site.py")
    build_site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_site)
    monkeypatch.setattr(build_site, "WORK", tmp_path)
    notebook = tmp_path / "09_stops.ipynb"
    cells = [nbformat.v4.new_code_cell("print('before')"), nbformat.v4.new_code_cell("raise OSError('no network')")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    copy, error = build_site.execute(notebook, smoke=True)
    executed = nbformat.read(copy, as_version=4)
    assert error.ename == "OSError" and "stopped after" in executed.cells[1].source
    assert "OSError: no network" in executed.cells[1].source and executed.cells[0].outputs[0]["text"] == "before\n"
    assert executed.metadata["site_source_key"] is None  # never reused: the next build runs it again
