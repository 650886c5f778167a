"""The built docs site is self-contained: nothing loaded from another host, math served with it and typeset.

The first checks read the built HTML and CSS (no browser); the last one opens every page in headless Chromium
(scripts/check_site.py) and is skipped where no Chromium is installed.
"""

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
MATHJAX = "javascripts/mathjax/tex-svg.js"
sys.path.insert(0, str(ROOT / "scripts"))
from check_site import find_chromium  # noqa: E402 - scripts/ is not a package
from docstring_markdown import to_markdown  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]' (scripts/setup.sh installs it)")
    out = tmp_path_factory.mktemp("site") / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    return out


class _Loads(HTMLParser):
    """The URLs an HTML page loads (not the links it shows), and its inline styles."""

    LOADING_REL = {"stylesheet", "preload", "modulepreload", "icon", "shortcut", "apple-touch-icon", "manifest",
                   "prefetch", "preconnect", "dns-prefetch"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "embed", "source", "audio", "video", "track", "input") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "img" and a.get("srcset"):
            self.urls += [part.split()[0] for part in a["srcset"].split(",") if part.strip()]
        if tag == "object" and a.get("data"):
            self.urls.append(a["data"])
        if tag == "link" and set((a.get("rel") or "").lower().split()) & self.LOADING_REL and a.get("href"):
            self.urls.append(a["href"])
        if a.get("style"):
            self.styles.append(a["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)""")


def _remote(url: str) -> bool:
    parts = urlsplit(url.strip())
    return (parts.scheme in ("http", "https") or url.strip().startswith("//")) and parts.hostname not in (
        "localhost", "127.0.0.1")


def test_no_page_loads_anything_from_another_host(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 50
    remote = {}
    for page in pages:
        p = _Loads()
        p.feed(page.read_text(encoding="utf-8"))
        urls = p.urls + [u for style in p.styles for m in CSS_URL.finditer(style) for u in m.groups() if u]
        if bad := [u for u in urls if _remote(u)]:
            remote[page.relative_to(site).as_posix()] = bad
    for css in site.rglob("*.css"):
        urls = [u for m in CSS_URL.finditer(css.read_text(encoding="utf-8")) for u in m.groups() if u]
        if bad := [u for u in urls if _remote(u)]:
            remote[css.relative_to(site).as_posix()] = bad
    assert remote == {}


def test_every_page_loads_the_bundled_mathjax_after_its_configuration(site):
    assert (site / MATHJAX).stat().st_size > 1_000_000  # the single-file component, not a pointer
    assert 'e.VERSION="3.2.2"' in (site / MATHJAX).read_text(encoding="utf-8")  # the version docs/site.md names
    for page in sorted(site.rglob("*.html")):
        p = _Loads()
        p.feed(page.read_text(encoding="utf-8"))
        scripts = [urlsplit(u).path.rsplit("/", 2)[-2:] for u in p.urls if u.endswith(".js")]
        names = ["/".join(s) for s in scripts]
        assert "mathjax/tex-svg.js" in names, page
        assert names.index("javascripts/mathjax-config.js") < names.index("mathjax/tex-svg.js"), page


def _text(html: str) -> str:
    """The text of a page's article outside code blocks, code spans and formulas."""
    article = html[html.find("<article"):html.rfind("</article>")]
    article = re.sub(r"<(pre|code|script|style)\b.*?</\1>", " ", article, flags=re.S)
    article = re.sub(r'<(span|div) class="arithmatex">.*?</\1>', " ", article, flags=re.S)
    return re.sub(r"<[^>]+>", "", article)


def test_generated_pages_have_no_rest_leftovers_and_typeset_their_formulas(site):
    leftovers = {}
    for page in sorted(site.rglob("*.html")):
        text = _text(page.read_text(encoding="utf-8"))
        found = re.findall(r"\S*::\s*$|:(?:func|class|meth|mod|attr|data|obj|exc|math):|\.\. math::", text, re.M)
        if found:
            leftovers[page.relative_to(site).as_posix()] = found[:3]
    assert leftovers == {}
    for name in ("DiracGAN-v0", "Bilinear-v0", "CIFAR10-DCGAN-v0"):  # their docstrings are in LaTeX
        html = (site / "envs" / name / "index.html").read_text(encoding="utf-8")
        assert html.count('class="arithmatex"') >= 10, name
        assert "<pre" not in html.split('id="game"', 1)[1].split("<h2", 1)[0], name  # no ASCII formula block


def test_docstring_markdown_turns_rest_literal_blocks_math_and_roles_into_markdown():
    doc = ("Summary.\n\nText::\n\n    a = b\n      c\n\nAfter :func:`~x.y.f` and :class:`Z`, :math:`x^2`.\n\n"
           ".. math::\n\n    u = v\n\n* item::\n\n    block\n\n::\n\n    lone\n\n```python\nkeep::\n```")
    assert to_markdown(doc) == (
        "Summary.\n\nText:\n\n```text\na = b\n  c\n```\n\nAfter `f` and `Z`, $x^2$.\n\n$$\nu = v\n$$\n\n"
        "* item:\n\n  ```text\n  block\n  ```\n\n```text\nlone\n```\n\n```python\nkeep::\n```")
    # a first line whose block lost its indentation to cleandoc
    assert to_markdown("As torch::\n\nv = 1\n") == "As torch:\n\n```text\nv = 1\n```"


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium (apt-get install chromium) for the headless check")
def test_every_page_in_headless_chromium_requests_only_localhost_and_renders_its_math(site, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_site.py"), "--site", str(site),
                        "--json", str(tmp_path / "report.json")], cwd=ROOT, capture_output=True, text=True,
                       timeout=900)
    if r.returncode == 2:  # Chromium is there but cannot start here (no sandbox support, no shared memory...)
        pytest.skip(f"Chromium did not start: {r.stderr[-500:]}")
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    summary = json.loads((tmp_path / "report.json").read_text())["summary"]
    assert summary["pages"] >= 50 and summary["non_local_requests"] == 0 and summary["failed_pages"] == 0
    assert summary["pages_with_math"] >= 10 and summary["mjx_containers"] >= summary["formulas"] >= 100


def test_the_home_page_shows_the_committed_figure(site):
    assert (ROOT / "docs" / "assets" / "home-dirac.png").stat().st_size > 10_000
    assert 'src="assets/home-dirac.png"' in (site / "index.html").read_text(encoding="utf-8")
