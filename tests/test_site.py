"""The static site (tools/site.py): built offline from the committed notebooks, checked in headless Chromium.

Every page is opened from a local server in Debian's Chromium (driven by Selenium through
/usr/bin/chromedriver, no browser download); a screenshot per page goes to build/site-screenshots/.
"""

import functools
import http.server
import json
import re
import shutil
import threading
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tools import site

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SHOTS = ROOT / "build" / "site-screenshots"
LOCAL = ("http://127.0.0.1:", "data:", "blob:", "about:", "chrome-extension:")


def _plain(markdown: str) -> str:
    """A heading as the browser shows it (no Markdown emphasis or code marks)."""
    return re.sub(r"[`*_]", "", markdown).strip()


def test_landing_page_links_notebooks_and_lists_them_in_order():
    page = site.landing_page(
        "# T\n\nSee [one](notebooks/02_b.ipynb) and ![x](images/a.png).\n", ["01_a.ipynb", "02_b.ipynb"]
    )
    assert "[one](02_b.ipynb)" in page and "](images/a.png)" in page
    assert page.index("\n01_a\n") < page.index("\n02_b\n") and ":hidden:" in page


def test_staged_notebook_has_the_note_after_its_title_and_no_widget_state(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}})
    code = nbformat.v4.new_code_cell("for _ in tqdm(x): pass")
    code.outputs = [
        nbformat.v4.new_output("display_data", {site.WIDGET: {"model_id": "m"}, "text/plain": "  0%|          | 0/3"})
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Filters `and` *you*\n\ntext"), code]
    nbformat.write(nb, tmp_path / "02_x.ipynb")
    title = site.stage_notebook(tmp_path / "02_x.ipynb", tmp_path / "out.ipynb")
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert title == "Filters `and` *you*"
    assert "{download}`Download 02_x.ipynb <02_x.ipynb>`" in out.cells[1].source
    assert "import helpers" in out.cells[1].source and "%pip install" in out.cells[1].source
    assert "widgets" not in out.metadata
    assert out.cells[2].outputs[0]["data"] == {"text/plain": "  0%|          | 0/3"}  # no saved state: as written


def _tqdm_state(visibility):
    """The widget state Jupyter saves for a finished tqdm bar: HBox(HTML, FloatProgress, HTML) and a layout."""
    models = {
        "box": ("HBoxModel", {"children": ["IPY_MODEL_l", "IPY_MODEL_b", "IPY_MODEL_r"], "layout": "IPY_MODEL_lay"}),
        "l": ("HTMLModel", {"value": "boxes:\u2007100%"}),
        "b": ("FloatProgressModel", {"value": 16.0, "max": 16.0}),
        "r": ("HTMLModel", {"value": "\u200716/16\u2007[02:00&lt;00:00]"}),
        "lay": ("LayoutModel", {"visibility": visibility}),
    }
    state = {k: {"model_name": name, "state": st} for k, (name, st) in models.items()}
    return {"application/vnd.jupyter.widget-state+json": {"state": state, "version_major": 2, "version_minor": 0}}


@pytest.mark.parametrize("visibility, shown", [(None, ["boxes: 100%|██████████| 16/16 [02:00<00:00]"]), ("hidden", [])])
def test_a_finished_progress_bar_shows_its_final_text_or_nothing_when_it_ended_hidden(tmp_path, visibility, shown):
    nb = nbformat.v4.new_notebook(metadata={"widgets": _tqdm_state(visibility)})
    code = nbformat.v4.new_code_cell("evaluate()")
    bar = {site.WIDGET: {"model_id": "box"}, "text/plain": "boxes:   0%|          | 0/16"}  # the text it started with
    code.outputs = [nbformat.v4.new_output("display_data", bar), nbformat.v4.new_output("stream", text="done\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), code]
    nbformat.write(nb, tmp_path / "05_x.ipynb")
    site.stage_notebook(tmp_path / "05_x.ipynb", tmp_path / "out.ipynb")
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[2].outputs
    assert [o["data"]["text/plain"] for o in outputs if o["output_type"] == "display_data"] == shown
    assert outputs[-1]["text"] == "done\n"


def test_the_staged_site_wraps_long_output_lines(tmp_path):
    site.stage(tmp_path / "src")
    assert "white-space: pre-wrap" in (tmp_path / "src" / "_static" / "course.css").read_text()
    assert 'html_css_files = ["course.css"]' in (tmp_path / "src" / "conf.py").read_text()


def test_site_takes_the_course_notebooks_never_the_solutions():
    names = [p.name for p in site.notebooks()]
    assert names == sorted(names) and names[0].startswith("01_")
    assert all("solutions" not in str(p) for p in site.notebooks())


# ---------------------------------------------------------------- the built site in a browser
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("myst_nb", reason="no site packages: `make site-deps` (requirements-site.txt)")
    out = tmp_path_factory.mktemp("site")
    assert site.build(out / "html", out / "src") == 0
    return out / "html"


@pytest.fixture(scope="module")
def server(built):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(built))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium missing: pip install -r requirements-site.txt"
    )
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("no Chromium: `apt-get install -y chromium chromium-driver` (Debian) enables the browser test")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1800",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-default-apps", "--disable-sync",
                # any name but 127.0.0.1 fails to resolve: a non-local request is logged, never sent
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def _open(driver, url: str, shot: Path):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    driver.execute_script("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; });")
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)")
    )
    shot.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shot))
    first_figure = "const i = document.querySelector('.cell_output img'); i && i.scrollIntoView(); return !!i"
    if driver.execute_script(first_figure):
        driver.save_screenshot(str(shot.with_name(shot.stem + "_figure.png")))


@pytest.mark.slow
def test_every_page_renders_offline_in_chromium(built, server, browser):
    from selenium.webdriver.common.by import By

    pages = [(p.name, nbformat.read(p, as_version=4)) for p in site.notebooks()]
    expected_titles = [_plain(next(c.source for c in nb.cells if c.source.startswith("# "))[2:].splitlines()[0])
                       for _, nb in pages]  # fmt: skip
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    problems, nonlocal_requests = [], []
    for i, (name, title) in enumerate([("index.ipynb", None), *zip([n for n, _ in pages], expected_titles)]):
        html = name.replace(".ipynb", ".html")
        _open(browser, server + html, SHOTS / f"{i:02d}_{html.removesuffix('.html')}.png")
        page_title = browser.title
        assert page_title.endswith(site.TITLE), page_title
        if title is not None:
            assert page_title.split(" \u2014 ")[0].strip() == title, (html, page_title)
        # the sidebar lists the notebooks in course order, on every page
        links = browser.find_elements(By.CSS_SELECTOR, "nav.bd-docs-nav a.reference.internal")
        order = [a.get_attribute("href").rsplit("/", 1)[-1].split("#")[0] for a in links]
        assert [h for h in order if h != "index.html"] == [n.replace(".ipynb", ".html") for n, _ in pages], html
        # every image loaded
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.src)"
        )
        if broken:
            problems.append(f"{html}: images not loaded: {broken}")
        # no error output rendered
        errors = browser.find_elements(By.CSS_SELECTOR, ".output.traceback, .output.error, .cell_output .traceback")
        text = browser.find_element(By.TAG_NAME, "body").text
        if errors or "Traceback (most recent call last)" in text:
            problems.append(f"{html}: error output rendered")
        if title is not None:
            # long output lines (the ✔ claims, tables) wrap: no output block scrolls sideways
            wrap = browser.execute_script(
                "const p = document.querySelector('div.cell_output pre');"
                "return p && [getComputedStyle(p).whiteSpace, p.scrollWidth <= p.clientWidth + 1]"
            )
            if wrap and wrap != ["pre-wrap", True]:
                problems.append(f"{html}: output lines do not wrap ({wrap})")
            figures = browser.execute_script("return document.querySelectorAll('.cell_output img').length")
            committed = sum(
                1
                for c in nb_of(pages, name).cells
                for o in c.get("outputs", [])
                if {"image/png", "image/jpeg"} & set(o.get("data", {}))
            )
            if figures != committed:
                problems.append(f"{html}: {figures} figures shown, {committed} committed")
            link = browser.find_elements(By.CSS_SELECTOR, f"a.download[href$='{name}']")
            if not link:
                problems.append(f"{html}: no download link to {name}")
            else:
                with urllib.request.urlopen(link[0].get_attribute("href")) as r:  # noqa: S310 - our 127.0.0.1 server
                    assert nbformat.reads(r.read().decode(), as_version=4).cells, name
        nonlocal_requests += [f"{html}: {u}" for u in _requests(browser) if not u.startswith(LOCAL)]
        severe = [
            e["message"]
            for e in browser.get_log("browser")
            if e["level"] == "SEVERE" and "/favicon.ico" not in e["message"]  # the browser asks for it by itself
        ]
        if severe:
            problems.append(f"{html}: console errors {severe[:3]}")
    assert not nonlocal_requests, nonlocal_requests
    assert not problems, problems
    assert not list(built.rglob("*solution*")), "the site must never publish notebooks/solutions/"


def nb_of(pages, name):
    return next(nb for n, nb in pages if n == name)
