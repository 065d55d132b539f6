"""End to end: build the whole book from a clean copy of the tree, then open every page in headless Chromium.

Asserts that every chart container holds a rendered SVG or canvas, that the
browser console shows no error, and that no request left the machine (every
request URL seen by the DevTools network log is file://, data:, blob: or
localhost). Every chart is also read as a reader would see it
(``tests/chart_checks.js``): each data mark (bar, point, area, line) has a
visible extent, each continuous axis has at least 3 labelled ticks, no two
visible text labels overlap; hovering a mark shows numbers formatted with
units; the pages' prose names no raw column, internal id or file; equations
are rendered by the local MathJax; and moving a slider changes the chosen
configuration. Needs the reference data (HARNESS_REFERENCE_DIR) and Debian's
chromium + chromium-driver (``make system-deps``). Set BOOK_SCREENSHOT_DIR to
keep a screenshot of the overview page, and BOOK_BUILT_HTML to check an
already built ``_build/html`` instead of building one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
LOCAL_SCHEMES = {"file", "data", "blob", "about", "chrome", "devtools"}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _source_files(repo: Path) -> list[Path]:
    """The files a fresh clone would have: tracked plus untracked-but-not-ignored."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [Path(p) for p in out.split("\0") if p]


# what a package's own docs in an installed venv may hold (huggingface_hub's card template): Sphinx fails on it
_BROKEN_PAGE = "---\n{{ card_data }}\n---\n\n# not a page of the book\n"


def _made_folders() -> list[str]:
    """The folders ``make`` creates in the checkout (venvs, stamps), from the Makefile's variables."""
    text = (REPO / "Makefile").read_text()
    return re.findall(r"^(?:VENV|ENGINES|STAMPS)\s*:=\s*(\S+)", text, flags=re.M)


def test_the_folders_make_creates_are_named_in_the_makefile():
    assert {".venv", ".venv-engines", ".stamps"} <= set(_made_folders())


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    prebuilt = os.environ.get("BOOK_BUILT_HTML")
    if prebuilt:  # check a book built elsewhere (e.g. from an older commit) instead of building one
        assert (Path(prebuilt) / "index.html").is_file(), f"BOOK_BUILT_HTML={prebuilt} holds no built book"
        return Path(prebuilt)
    if not os.environ.get("HARNESS_REFERENCE_DIR"):
        pytest.fail("HARNESS_REFERENCE_DIR is not set: the book is built from the reference data")
    root = tmp_path_factory.mktemp("book")
    for rel in _source_files(REPO):
        src = REPO / rel
        if src.is_file() and not src.is_symlink():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / rel)
    # a user's checkout after `make measure`: venvs whose packages carry Markdown the book must not read
    for folder in _made_folders():
        page = root / folder / "lib" / "site-packages" / "somepkg" / "README.md"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(_BROKEN_PAGE)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.report.book", "build", "--root", str(root)],
        cwd=root,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, f"book build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    print(f"full book build from a clean tree: {seconds:.1f} s")
    html = root / "_build" / "html"
    assert (html / "index.html").is_file()
    assert not [p for folder in _made_folders() for p in (html / folder).rglob("*.html")], "a venv's file became a page"
    return html


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("chromium and chromedriver are needed (make system-deps: apt-get install chromium chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--allow-file-access-from-files",
        "--window-size=1280,1600",
        # anything that still tried to reach another host would fail here (and show in the logs)
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message.get("method") == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


def _is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in LOCAL_SCHEMES or (parsed.hostname or "") in LOCAL_HOSTS


_CHART_STATE = """
return Array.from(document.querySelectorAll('.joules-chart')).map(function (el) {
  return {id: el.id, drawn: !!el.querySelector('svg, canvas'), marks: el.querySelectorAll('svg .mark-symbol path, svg .mark-rect path, svg .mark-line path, svg path').length, text: el.textContent.slice(0, 200)};
});
"""  # noqa: E501


CHART_CHECKS = (Path(__file__).with_name("chart_checks.js")).read_text()

# Page text that betrays the machinery: raw column names (snake_case, e.g. with a unit suffix), file names,
# internal ids of the findings. Code blocks and inline code are not prose and are left out.
_SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
_FILE = re.compile(r"\b[\w-]+\.(?:md|csv|ipynb|json|parquet|ya?ml|py)\b", re.IGNORECASE)
_PAGE_TEXT = """
var main = document.querySelector('main') || document.body;
var copy = main.cloneNode(true);
copy.querySelectorAll('pre, code, script, style, .joules-chart, .cell_input, mjx-container, .headerlink, nav').forEach(
  function (n) { n.remove(); });
return copy.textContent;
"""


def leaks(text: str, ids: Iterable[str] = ()) -> list[str]:
    """Raw column names, file names and internal ids found in a page's prose."""
    found = [m.group(0) for m in _SNAKE.finditer(text)] + [m.group(0) for m in _FILE.finditer(text)]
    found += [i for i in ids if re.search(rf"(?<![\w-]){re.escape(i)}(?![\w-])", text)]
    return sorted(set(found))


def finding_ids() -> list[str]:
    from harness.analysis import findings

    return [i for i in findings.FINDINGS if "-" in i]  # one-word ids are ordinary words


_UNITLESS = re.compile(
    r"batch size|^gpus$|count|share|ratio|factor|b / a|/|over|^a$|^b$|steps|frames|rank|degree|replicas", re.I
)
_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?%?$", re.I)


def tooltip_problems(rows: list[list[str]]) -> list[str]:
    """Numbers in a tooltip: no exponent notation, no unrounded digits, and a unit in the title."""
    out = []
    keys = {k.strip().lower() for k, _ in rows}
    for key, value in rows:
        value = value.strip()
        if not _NUMBER.match(value):
            continue
        if "e" in value.lower():
            out.append(f"{key}: {value} (exponent notation)")
        digits = re.sub(r"[^0-9]", "", value.split(".")[1]) if "." in value else ""
        if len(digits) > 4:
            out.append(f"{key}: {value} (unrounded)")
        if "(" not in key and not value.endswith("%") and not _UNITLESS.search(key) and "unit" not in keys:
            out.append(f"{key}: {value} (no unit)")
    return out


_TOOLTIP = """
var t = document.querySelector('#vg-tooltip-element.visible');
if (!t) return null;
var rows = Array.from(t.querySelectorAll('tr')).map(function (r) {
  var c = r.querySelectorAll('td'); return c.length == 2 ? [c[0].textContent.replace(/:$/, ''), c[1].textContent] : null;
}).filter(Boolean);
return rows.length ? rows : [['', t.textContent]];
"""  # noqa: E501


def _hover_tooltip(driver, chart) -> list[list[str]] | None:
    """Hover the first bar or point of a chart; the tooltip's rows (title, value), or None if none showed."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    marks = chart.find_elements(By.CSS_SELECTOR, "g.role-mark.mark-symbol > path, g.role-mark.mark-rect > path")
    for mark in marks[:3]:
        try:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", mark)
            ActionChains(driver).move_to_element(mark).perform()
        except WebDriverException:
            continue
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            rows = driver.execute_script(_TOOLTIP)
            if rows:
                ActionChains(driver).move_by_offset(0, 0).perform()
                return rows
            time.sleep(0.1)
    return None


def _open(driver, page: Path, timeout_s: float = 30) -> list[dict]:
    driver.get(page.as_uri())
    deadline = time.monotonic() + timeout_s
    while True:
        charts = driver.execute_script(_CHART_STATE)
        if all(c["drawn"] for c in charts) or time.monotonic() > deadline:
            return charts
        time.sleep(0.2)


def test_every_page_renders_offline_without_errors(built_book: Path, browser):
    # _static holds the themes' Jinja macro files, not pages
    pages = sorted(p for p in built_book.rglob("*.html") if "_static" not in p.relative_to(built_book).parts)
    assert pages, "no HTML page was built"
    problems: list[str] = []
    chart_count = {}
    ids = finding_ids()
    for page in pages:
        rel = page.relative_to(built_book).as_posix()
        browser.get_log("browser")  # drop what an earlier page left
        charts = _open(browser, page)
        chart_count[rel] = len(charts)
        for chart in charts:
            if not chart["drawn"]:
                problems.append(f"{rel}: chart {chart['id']} holds no SVG or canvas ({chart['text']!r})")
            elif chart["marks"] == 0:
                problems.append(f"{rel}: chart {chart['id']} drew no marks")
        from selenium.webdriver.common.by import By

        for element in browser.find_elements(By.CSS_SELECTOR, ".joules-chart"):
            result = browser.execute_script(CHART_CHECKS, element)
            if isinstance(result, list):
                problems.extend(f"{rel}: chart {element.get_attribute('id')}: {p}" for p in result)
                continue
            problems.extend(f"{rel}: chart {result['title']!r}: {p}" for p in result["problems"])
            rows = _hover_tooltip(browser, element)
            if rows is not None:
                problems.extend(f"{rel}: chart {result['title']!r}: tooltip {p}" for p in tooltip_problems(rows))
        problems.extend(f"{rel}: page text names {word!r}" for word in leaks(browser.execute_script(_PAGE_TEXT), ids))
        for entry in browser.get_log("browser"):
            if entry["level"] in ("SEVERE", "ERROR"):
                problems.append(f"{rel}: console error: {entry['message']}")
        for url in _requests(browser):
            if not _is_local(url):
                problems.append(f"{rel}: request left the machine: {url}")
    assert not problems, "\n".join(problems)
    assert chart_count.get("book/_generated/overview.html", 0) >= 1, f"the overview shows no chart: {chart_count}"


def test_overview_chart_has_tooltips_and_both_gpus(built_book: Path, browser, tmp_path):
    page = built_book / "book" / "_generated" / "overview.html"
    browser.set_window_size(1280, 1600)
    charts = _open(browser, page)
    assert charts and all(c["drawn"] for c in charts)
    shots = Path(os.environ.get("BOOK_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shots / "overview.png"))
    svg_text = browser.execute_script("return document.querySelector('.joules-chart svg').textContent")
    assert "H100" in svg_text and "B200" in svg_text
    # hover the first point: Vega's tooltip handler shows the model, GPU, batch size and the value with its unit
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    point = browser.find_element(By.CSS_SELECTOR, ".joules-chart svg .mark-symbol path")
    ActionChains(browser).move_to_element(point).perform()
    deadline = time.monotonic() + 5
    tooltip = ""
    while time.monotonic() < deadline and not tooltip:
        tooltip = browser.execute_script(
            "var t = document.querySelector('#vg-tooltip-element.visible'); return t ? t.textContent : '';"
        )
        time.sleep(0.1)
    for field in ("Model", "GPU", "Batch size", "Energy per output (J)"):
        assert field in tooltip, f"tooltip {tooltip!r} lacks {field}"
    assert browser.save_screenshot(str(shots / "overview-tooltip.png"))


def test_the_checks_see_a_remote_request_and_a_console_error(browser, tmp_path):
    """The guards above can fail: a page that reaches for another host and logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<html><body><img src='https://cdn.example.invalid/x.png'><script>console.error('boom')</script></body></html>"
    )
    browser.get_log("browser")
    _requests(browser)
    browser.get(page.as_uri())
    time.sleep(0.5)
    remote = [u for u in _requests(browser) if not _is_local(u)]
    assert remote == ["https://cdn.example.invalid/x.png"]
    assert any("boom" in e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE")


def test_equations_render_with_the_local_mathjax(built_book: Path, browser):
    page = built_book / "book" / "method.html"
    browser.get_log("browser")
    _requests(browser)
    browser.get(page.as_uri())
    deadline = time.monotonic() + 20
    count = 0
    while time.monotonic() < deadline and not count:
        count = browser.execute_script("return document.querySelectorAll('mjx-container svg').length")
        time.sleep(0.2)
    assert count >= 4, f"the method page shows {count} rendered equations"
    errors = browser.execute_script(
        "return document.querySelectorAll('mjx-container [data-mjx-error], mjx-merror').length"
    )
    assert errors == 0, "MathJax reported a TeX error"
    mathjax = [u for u in _requests(browser) if "mathjax" in u.lower()]
    assert mathjax and all(u.startswith("file://") for u in mathjax), mathjax


def test_the_chart_checks_catch_empty_bars_one_tick_axes_and_bad_tooltips(browser, tmp_path):
    """Bars from zero on a log axis (zero width), a log axis inside one decade (a single labelled tick):
    the checks report both; the study's own bars() on the same table passes them."""
    import altair as alt
    import pandas as pd

    from harness.report import charts

    frame = pd.DataFrame({"nickname": ["a", "b", "c"], "energy_per_output_joules": [2100.0, 3300.0, 5200.0]})
    naive = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("energy_per_output_joules:Q", scale=alt.Scale(type="log")),
            y="nickname:N",
            tooltip=[alt.Tooltip("energy_per_output_joules:Q", title="Energy", format=".3~g")],
        )
    )
    page = charts.save(naive, tmp_path / "naive.html")
    browser.get(page.as_uri())
    time.sleep(1.5)
    from selenium.webdriver.common.by import By

    result = browser.execute_script(CHART_CHECKS, browser.find_element(By.CSS_SELECTOR, ".joules-chart"))
    text = " ".join(result["problems"])
    assert "3 of 3 data marks have no visible extent" in text
    assert "labelled tick" in text
    assert tooltip_problems([["Energy", "2.1e+3"]]) and tooltip_problems([["Energy (J)", "337.943437496"]])
    assert not tooltip_problems([["Energy per output (J)", "2,100"], ["Batch size", "4"]])
    assert leaks("the chat_mean_energy_per_response_joules column of STUDY.md (moe-vs-dense)", ["moe-vs-dense"]) == [
        "STUDY.md",
        "chat_mean_energy_per_response_joules",
        "moe-vs-dense",
    ]

    fixed = charts.bars(frame, "nickname", "energy_per_output_joules", facet=None, log=True)
    page = charts.save(fixed, tmp_path / "fixed.html")
    browser.get(page.as_uri())
    time.sleep(1.5)
    result = browser.execute_script(CHART_CHECKS, browser.find_element(By.CSS_SELECTOR, ".joules-chart"))
    assert result["problems"] == []
    rows = _hover_tooltip(browser, browser.find_element(By.CSS_SELECTOR, ".joules-chart"))
    assert rows and not tooltip_problems(rows), rows


_CHOSEN = """
var el = arguments[0];
return Array.from(el.querySelectorAll('svg g.mark-text text')).map(function (t) { return t.textContent; })
  .filter(function (t) { return /^batch /.test(t); });
"""


def test_a_slider_and_the_gpu_toggle_change_the_chosen_configuration(built_book: Path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(browser, built_book / "book" / "_generated" / "llm-chat.html")
    choosers = [
        c
        for c in browser.find_elements(By.CSS_SELECTOR, ".joules-chart")
        if c.find_elements(By.CSS_SELECTOR, ".vega-bindings input[type=range]")
    ]
    assert choosers, "the chat chapter has no chart with a deadline slider"
    chart = choosers[0]

    def chosen(differs_from=None):
        deadline = time.monotonic() + 10
        while True:
            now = browser.execute_script(_CHOSEN, chart)
            if differs_from is None or now != differs_from or time.monotonic() > deadline:
                return now
            time.sleep(0.2)

    before = chosen()
    assert before and all("B200" in t for t in before), before
    slider = chart.find_elements(By.CSS_SELECTOR, ".vega-bindings input[type=range]")[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
    # the ITL slider moves over log10 of the deadline (values span decades): 30 steps of 0.01 from the fastest
    assert slider.get_attribute("name").endswith("_log"), "the ITL deadline slider is not on a log scale"
    slider.send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * 30)  # a deadline of about twice the fastest ITL
    after = chosen(differs_from=before)
    assert after != before, "moving the deadline slider did not change the chosen configurations"
    assert 0 < len(after) < len(before), (before, after)  # a tight deadline leaves fewer models, some still
    itl = [float(re.search(r"([\d.,]+) ms$", t).group(1).replace(",", "")) for t in after]
    limit = 10 ** float(slider.get_attribute("value"))
    assert all(v <= limit * 1.01 for v in itl), (limit, after)
    # the models the deadline removes stay listed, saying why
    removed = browser.execute_script(
        "return Array.from(arguments[0].querySelectorAll('svg g.mark-text text')).map(function (t) "
        "{ return t.textContent; }).filter(function (t) { return /^nothing within the limits/.test(t); });",
        chart,
    )
    assert len(removed) == len(before) - len(after), (removed, before, after)
    shown = browser.execute_script(
        "return Array.from(arguments[0].querySelectorAll('svg g.mark-text text')).map(function (t) "
        "{ return t.textContent; }).filter(function (t) { return /^Deadline: /.test(t); });",
        chart,
    )
    assert shown and f"{limit:.3g}".rstrip("0").rstrip(".")[:2] in shown[0], (shown, limit)
    result = browser.execute_script(CHART_CHECKS, chart)
    assert not [p for p in result["problems"] if "overlapping" in p or "visible extent" in p], result

    h100 = [
        r
        for r in chart.find_elements(By.CSS_SELECTOR, ".vega-bindings input[type=radio]")
        if r.get_attribute("value") == "H100"
    ]
    assert h100, "no GPU toggle"
    h100[0].click()
    on_h100 = chosen(differs_from=after)
    assert on_h100 and all("H100" in t for t in on_h100), on_h100


# --- one visual system across the book (issue 24) ------------------------------------------------------------
_LEGENDS = """
var out = [];
arguments[0].querySelectorAll('svg g.role-legend').forEach(function (lg) {
  var aria = lg.getAttribute('aria-label') || '';
  if (!/color/.test(aria)) return;
  var symbols = lg.querySelectorAll('g.role-legend-symbol > path');
  var labels = lg.querySelectorAll('g.role-legend-label > text');
  var entries = [];
  for (var i = 0; i < Math.min(symbols.length, labels.length); i++) {
    var p = symbols[i];
    var fill = p.getAttribute('fill'), stroke = p.getAttribute('stroke');
    var colour = (fill && fill !== 'transparent' && fill !== 'none') ? fill : stroke;
    entries.push([labels[i].textContent.trim(), (colour || '').toLowerCase()]);
  }
  out.push({title: aria.slice(0, 80), entries: entries});
});
return out;
"""


def legend_colours(legends_by_page: dict[str, list[dict]]) -> dict[str, dict[str, list[str]]]:
    """Label -> colour -> the pages (and legends) that draw it, over every colour legend of the book."""
    seen: dict[str, dict[str, list[str]]] = {}
    for page, legends in legends_by_page.items():
        for legend in legends:
            colours = {c for _, c in legend["entries"]}
            if len(colours) < 2:  # one colour for every entry: not a colour legend of categories
                continue
            for label, colour in legend["entries"]:
                seen.setdefault(label, {}).setdefault(colour, []).append(f"{page} ({legend['title']})")
    return seen


def test_a_model_task_or_gpu_has_one_colour_across_the_book(built_book: Path, browser):
    pages = sorted(p for p in built_book.rglob("*.html") if "_static" not in p.relative_to(built_book).parts)
    by_page = {}
    for page in pages:
        _open(browser, page)
        from selenium.webdriver.common.by import By

        legends = []
        for element in browser.find_elements(By.CSS_SELECTOR, ".joules-chart"):
            legends += browser.execute_script(_LEGENDS, element)
        by_page[page.relative_to(built_book).as_posix()] = legends
    seen = legend_colours(by_page)
    assert len(seen) >= 40, f"too few legend entries found ({len(seen)}): the legend reader is broken"
    clashes = {label: where for label, where in seen.items() if len(where) > 1}
    assert not clashes, "\n".join(
        f"{label}: " + "; ".join(f"{c} on {w[0]}" for c, w in where.items()) for label, where in clashes.items()
    )


def test_the_colour_check_sees_a_clash():
    legends = {
        "a.html": [{"title": "Model", "entries": [["FLUX.1 Dev", "#a79725"], ["SANA 1.5 1.6B", "#52b2fe"]]}],
        "b.html": [{"title": "Model", "entries": [["FLUX.1 Dev", "#1f77b4"], ["SANA 1.5 1.6B", "#52b2fe"]]}],
        "c.html": [{"title": "GPUs", "entries": [["1", "#888"], ["2", "#888"]]}],
    }
    seen = legend_colours(legends)
    assert set(seen["FLUX.1 Dev"]) == {"#a79725", "#1f77b4"} and len(seen["SANA 1.5 1.6B"]) == 1
    assert "1" not in seen  # a legend of one colour (dashes, shapes) is not about colour


_MARK_OPACITY = """
return Array.from(arguments[0].querySelectorAll('svg g.role-mark path')).filter(function (p) {
  return !p.closest('g.role-legend') && !p.closest('g.role-axis');
}).map(function (p) { return p.getAttribute('opacity') || getComputedStyle(p).opacity; });
"""
# the pages whose charts come from the shared chart functions (each binds a selection to its colour legend)
_HIGHLIGHT_PAGES = ("llm-chat", "llm-reasoning", "text-to-image", "text-to-video", "hardware-precision")


def test_a_click_on_a_legend_entry_highlights_its_series(built_book: Path, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    problems, clicked = [], 0
    for name in _HIGHLIGHT_PAGES:
        _open(browser, built_book / "book" / "_generated" / f"{name}.html")
        for chart in browser.find_elements(By.CSS_SELECTOR, ".joules-chart"):
            legends = [
                lg
                for lg in chart.find_elements(By.CSS_SELECTOR, "svg g.role-legend")
                if "color" in (lg.get_attribute("aria-label") or "")
                and len(lg.find_elements(By.CSS_SELECTOR, "g.role-legend-label > text")) >= 2
            ]
            if not legends or "direction" in (legends[0].get_attribute("aria-label") or ""):
                continue
            title = legends[0].get_attribute("aria-label")[:60]
            if "raises B" in (legends[0].text or ""):  # a factor chart: its colours are directions, not series
                continue
            before = browser.execute_script(_MARK_OPACITY, chart)
            label = legends[0].find_elements(By.CSS_SELECTOR, "g.role-legend-label > text")[0]
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", label)
            ActionChains(browser).move_to_element(label).click().perform()
            deadline = time.monotonic() + 3
            after = before
            while time.monotonic() < deadline and after == before:
                time.sleep(0.2)
                after = browser.execute_script(_MARK_OPACITY, chart)
            clicked += 1
            if after == before:
                problems.append(f"{name}: clicking the legend of {title!r} changed no mark")
            ActionChains(browser).move_to_element(label).click().perform()  # click again: back to all
    assert clicked >= 10, f"only {clicked} charts with a colour legend were clicked"
    assert not problems, "\n".join(problems)


_PARAGRAPHS = """
var main = document.querySelector('main') || document.body;
return Array.from(main.querySelectorAll('p')).filter(function (p) {
  return !p.closest('pre, code, .joules-chart, nav, .cell_input, table, .admonition');
}).map(function (p) { return p.textContent.replace(/\\s+/g, ' ').trim(); });
"""


def repeated_paragraphs(by_page: dict[str, list[str]], min_chars: int = 80) -> dict[str, list[str]]:
    """Paragraphs of at least ``min_chars`` that appear more than once in the book: text -> where."""
    where: dict[str, list[str]] = {}
    for page, paragraphs in by_page.items():
        for text in paragraphs:
            if len(text) >= min_chars:
                where.setdefault(text, []).append(page)
    return {text: pages for text, pages in where.items() if len(pages) > 1}


def test_no_paragraph_is_repeated_across_the_book(built_book: Path, browser):
    # index.html is the root chapter's copy (the book opens on it): not a page of its own
    pages = sorted(
        p
        for p in built_book.rglob("*.html")
        if "_static" not in p.relative_to(built_book).parts
        and p.relative_to(built_book).as_posix() not in ("index.html", "search.html", "genindex.html")
    )
    by_page = {}
    for page in pages:
        browser.get(page.as_uri())
        by_page[page.relative_to(built_book).as_posix()] = browser.execute_script(_PARAGRAPHS)
    assert sum(len(v) for v in by_page.values()) > 100, "too few paragraphs read: the reader is broken"
    repeated = repeated_paragraphs(by_page)
    assert not repeated, "\n".join(f"{', '.join(pages)}: {text[:160]}" for text, pages in repeated.items())


def test_the_repetition_check_sees_a_repeat():
    text = "The batch effect is the energy per token at the smallest batch over that at the largest, per series."
    assert repeated_paragraphs({"a.html": [text, "short"], "b.html": [text]}) == {text: ["a.html", "b.html"]}
    assert repeated_paragraphs({"a.html": [text], "b.html": [text + " Another sentence."]}) == {}
