"""Check the built docs site in headless Chromium: nothing is fetched from another host, and the math renders.

    python scripts/check_site.py                    # build the site (mkdocs build --strict), then check it
    python scripts/check_site.py --site DIR         # check a site built already
    python scripts/check_site.py --json report.json # also write the per-page findings

The site is served from 127.0.0.1 by Python's http.server; every page is opened in a headless Chromium
(``/usr/bin/chromium``, or ``--chromium PATH`` / ``$CHROMIUM``) driven through the DevTools protocol over a
pipe (``--remote-debugging-pipe``: the standard library only, no driver package). For every page it records
every request the page and its workers make (``Network.requestWillBeSent``) and fails on:

* a request to anything but the local server (``data:``, ``blob:`` and ``about:`` URLs are local too) — as a
  safeguard the browser also resolves no host name but 127.0.0.1, so such a request could not leave anyway;
* a local request that failed or answered 4xx/5xx;
* math that did not render: MathJax absent, an ``arithmatex`` element without its ``mjx-container``, a TeX
  error (``mjx-merror``), or raw TeX left in the text outside code (``$...$``, ``\\(``, ``\\[``, ``$$``,
  ``\\frac``-like commands);
* reST leftovers in the text: a paragraph ending in ``::``, a ``:func:``-like role, a ``.. math::``.

Exit status 0 when every page passes, 1 otherwise, 2 when Chromium cannot be started.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--no-default-browser-check", "--mute-audio",
         "--disable-dev-shm-usage",
         "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--remote-debugging-pipe"]

LOCAL_SCHEMES = ("data", "blob", "about")

# Runs in the page once it has loaded: waits for MathJax to finish typesetting, then reports what is on the page.
PAGE_PROBE = r"""
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const t0 = Date.now();
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() - t0 < 15000) await sleep(50);
  let mathjaxError = null;
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    try { await MathJax.startup.promise; } catch (e) { mathjaxError = String(e); }
  }
  const root = document.querySelector("article") || document.body;
  const arith = [...root.querySelectorAll(".arithmatex")];
  const inside = (n, sel) => n.parentElement && n.parentElement.closest(sel);
  const skip = "code, pre, mjx-container, script, style, .arithmatex, .headerlink";
  const texCommands = "frac|sqrt|theta|psi|mathbb|mathcal|lVert|rVert|sum|alpha|beta|eta|mu|sigma|gamma|" +
    "epsilon|nabla|top|hat|tilde|log|min|max|qquad|quad|text|operatorname|begin";
  const rawTeX = new RegExp(String.raw`\\\(|\\\)|\\\[|\\\]|\$\$|(^|[^\w$])\$[^\s$][^$]*[^\s$\\]\$(?!\w)|` +
    String.raw`\\(${texCommands})(?![A-Za-z])`);
  const rawText = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (n) => (inside(n, skip) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const m = n.textContent.match(rawTeX);
    if (m) rawText.push(n.textContent.slice(Math.max(0, m.index - 30), m.index + 50).trim());
  }
  const rest = [];
  for (const el of root.querySelectorAll("p, li, td, dd")) {
    const clone = el.cloneNode(true);
    clone.querySelectorAll("code, pre, mjx-container, .arithmatex").forEach((c) => c.remove());
    const text = clone.textContent.trim();
    if (/::$/.test(text) || /(^|\s|\():(func|class|meth|mod|attr|data|obj|exc|math|ref):/.test(text) ||
        /\.\. math::/.test(text)) rest.push(text.slice(-90));
  }
  return {
    title: document.title,
    mathjax: window.MathJax && MathJax.version ? MathJax.version : null,
    mathjaxError,
    arithmatex: arith.length,
    mjxContainers: root.querySelectorAll("mjx-container").length,
    untypeset: arith.filter((e) => !e.querySelector("mjx-container")).map((e) => e.textContent.slice(0, 80)),
    texErrors: [...root.querySelectorAll("mjx-merror, [data-mjx-error]")].map(
      (e) => e.getAttribute("data-mjx-error") || e.textContent).slice(0, 5),
    rawTeX: rawText.slice(0, 5),
    rest: rest.slice(0, 5),
    overflowing: [...root.querySelectorAll("pre, div.arithmatex, table")].filter((e) => {
      if (e.getBoundingClientRect().right <= root.getBoundingClientRect().right + 2) return false;
      // a box of its own that scrolls or clips (Material's table wrapper reaches 0.8rem into the margin)
      for (let a = e; a && a !== root; a = a.parentElement) {
        if (getComputedStyle(a).overflowX !== "visible" && a.getBoundingClientRect().right <=
            root.getBoundingClientRect().right + 24) return false;
      }
      return true;
    }).map((e) => e.tagName + ": " + e.textContent.replace(/\s+/g, " ").slice(0, 60)),
  };
})()
"""


class DevTools:
    """A minimal DevTools-protocol client over Chromium's ``--remote-debugging-pipe`` (fds 3 and 4)."""

    def __init__(self, chromium: str, user_data_dir: str, extra_flags: list[str] | None = None) -> None:
        to_child_r, self._w = os.pipe()
        self._r, from_child_w = os.pipe()

        def fds() -> None:  # the child reads commands on fd 3 and writes replies and events on fd 4
            r, w = os.dup(to_child_r), os.dup(from_child_w)  # above 4, so that neither dup2 clobbers the other
            os.dup2(r, 3)
            os.dup2(w, 4)

        # close_fds=False: fds 3 and 4 are made in fds(), after which close_fds would close them; the parent's
        # other descriptors are not inheritable (Python's default), so exec closes them anyway.
        self.proc = subprocess.Popen(
            [chromium, *FLAGS, *(extra_flags or []), f"--user-data-dir={user_data_dir}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=fds,
            close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)
        self._next = 0
        self._lock = threading.Lock()
        self._replies: dict[int, queue.Queue] = {}
        self.handlers: list = []  # callables(event) run on the reader thread
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                for q in list(self._replies.values()):
                    q.put({"error": {"message": "Chromium closed the pipe"}})
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    q = self._replies.pop(msg["id"], None)
                    if q is not None:
                        q.put(msg)
                else:
                    for h in self.handlers:
                        h(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, *,
             wait: bool = True, timeout: float = 60.0) -> dict:
        with self._lock:
            self._next += 1
            msg_id = self._next
            q: queue.Queue = queue.Queue()
            if wait:
                self._replies[msg_id] = q
            msg = {"id": msg_id, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            os.write(self._w, json.dumps(msg).encode() + b"\0")
        if not wait:
            return {}
        try:
            reply = q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{method}: no reply in {timeout:.0f} s") from None
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")[-2000:]

    def close(self) -> None:
        try:
            self.send("Browser.close", wait=False)
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - a browser that does not close is killed
            self.proc.kill()
            self.proc.wait()
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass


class Page:
    """One tab, its requests (the page's and its workers') and its load events."""

    def __init__(self, dt: DevTools) -> None:
        self.dt = dt
        self.requests: list[dict] = []
        self.failures: list[str] = []
        self.loaded = threading.Event()
        self._sessions: set[str] = set()
        target = dt.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = dt.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self._sessions.add(self.session)
        dt.handlers.append(self._event)
        for method in ("Page.enable", "Runtime.enable"):
            dt.send(method, session=self.session)
        self._watch(self.session)

    def _watch(self, session: str, wait: bool = True) -> None:
        self.dt.send("Network.enable", session=session, wait=wait)
        self.dt.send("Network.setCacheDisabled", {"cacheDisabled": True}, session=session, wait=wait)
        self.dt.send("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
                     session=session, wait=wait)

    def _event(self, msg: dict) -> None:
        session, method, params = msg.get("sessionId"), msg.get("method"), msg.get("params", {})
        if session not in self._sessions:
            return
        if method == "Target.attachedToTarget":  # a worker (the search index) or a frame: watch it too
            child = params["sessionId"]
            self._sessions.add(child)
            self._watch(child, wait=False)
            self.dt.send("Runtime.runIfWaitingForDebugger", session=child, wait=False)
        elif method == "Network.requestWillBeSent":
            self.requests.append({"url": params["request"]["url"], "id": params["requestId"],
                                  "type": params.get("type", "")})
        elif method == "Network.responseReceived":
            status = params["response"]["status"]
            if status >= 400:
                self.failures.append(f"HTTP {status}: {params['response']['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            url = next((r["url"] for r in self.requests if r["id"] == params["requestId"]), params["requestId"])
            self.failures.append(f"{params.get('errorText')}: {url}")
        elif method == "Page.loadEventFired" and session == self.session:
            self.loaded.set()

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page, 1280 px wide."""
        import base64

        size = self.dt.send("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
        shot = self.dt.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
            "x": 0, "y": 0, "width": 1280, "height": min(size["height"], 12000), "scale": 1}}, session=self.session)
        path.write_bytes(base64.b64decode(shot["data"]))

    def open(self, url: str, timeout: float = 60.0) -> dict:
        self.requests.clear()
        self.failures.clear()
        self.loaded.clear()
        self.dt.send("Page.navigate", {"url": url}, session=self.session)
        if not self.loaded.wait(timeout):
            raise TimeoutError(f"{url}: no load event in {timeout:.0f} s")
        result = self.dt.send("Runtime.evaluate", {"expression": PAGE_PROBE, "awaitPromise": True,
                                                   "returnByValue": True, "timeout": 30000},
                              session=self.session, timeout=timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{url}: the probe raised {result['exceptionDetails']}")
        n = -1  # let late requests (workers, lazily loaded MathJax parts) arrive: 0.3 s with none new
        while n != len(self.requests):
            n = len(self.requests)
            time.sleep(0.3)
        return result["result"]["value"]


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def find_chromium(explicit: str | None = None) -> str | None:
    for name in (explicit, os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                 "/usr/bin/chromium"):
        if name and (path := shutil.which(name)):
            return path
    return None


def build_site(out: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    if r.returncode:
        raise SystemExit(f"mkdocs build failed:\n{r.stdout}{r.stderr}")


def site_pages(site: Path) -> list[str]:
    """The site's pages as URL paths (``/``, ``/envs/DiracGAN-v0/``...), the 404 page included."""
    out = []
    for p in sorted(site.rglob("*.html")):
        rel = p.relative_to(site).as_posix()
        out.append("/" + (rel[: -len("index.html")] if rel.endswith("index.html") else rel))
    return out


def problems(finding: dict, requests: list[dict], failures: list[str], origin: str) -> list[str]:
    """What is wrong with one page."""
    out = []
    for r in requests:
        parts = urlsplit(r["url"])
        if parts.scheme in LOCAL_SCHEMES:
            continue
        if f"{parts.scheme}://{parts.netloc}" != origin:
            out.append(f"request to another host: {r['url']} ({r['type']})")
    out += [f"failed request: {f}" for f in failures]
    if not finding["mathjax"]:
        out.append("MathJax did not load")
    if finding["mathjaxError"]:
        out.append(f"MathJax failed: {finding['mathjaxError']}")
    out += [f"formula not typeset: {t!r}" for t in finding["untypeset"]]
    out += [f"TeX error: {t!r}" for t in finding["texErrors"]]
    out += [f"raw TeX in the text: {t!r}" for t in finding["rawTeX"]]
    out += [f"reST leftover: {t!r}" for t in finding["rest"]]
    if finding["mjxContainers"] < finding["arithmatex"]:
        out.append(f"{finding['arithmatex']} formulas, {finding['mjxContainers']} rendered")
    out += [f"wider than the text column, no scroll bar of its own: {t!r}" for t in finding["overflowing"]]
    return out


def check(site: Path, chromium: str, only: list[str] | None = None, verbose: bool = False,
          screenshots: Path | None = None) -> dict:
    server, origin = serve(site)
    pages = only or site_pages(site)
    report: dict = {"origin": origin, "chromium": chromium, "pages": {}}
    with tempfile.TemporaryDirectory(prefix="check-site-profile-") as profile:
        dt = DevTools(chromium, profile)
        try:
            try:
                version = dt.send("Browser.getVersion", timeout=60)
            except (RuntimeError, TimeoutError) as e:
                raise ChromiumError(f"{chromium} did not start: {e}\n{dt.stderr()}") from e
            report["browser"] = version.get("product")
            tab = Page(dt)
            dt.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1,
                                                           "mobile": False}, session=tab.session)
            for path in pages:
                finding = tab.open(origin + path)
                found = problems(finding, tab.requests, tab.failures, origin)
                report["pages"][path] = {**finding, "requests": [r["url"] for r in tab.requests], "problems": found}
                if screenshots is not None:
                    screenshots.mkdir(parents=True, exist_ok=True)
                    tab.screenshot(screenshots / ((path.strip("/").replace("/", "_") or "index") + ".png"))
                if verbose or found:
                    state = "FAIL" if found else "ok"
                    print(f"{state:4} {path}  requests={len(tab.requests)} formulas={finding['arithmatex']} "
                          f"mjx={finding['mjxContainers']}", flush=True)
                    for f in found:
                        print(f"       {f}", flush=True)
        finally:
            dt.close()
            server.shutdown()
    rows = report["pages"].values()
    report["summary"] = {
        "pages": len(report["pages"]),
        "failed_pages": sum(bool(r["problems"]) for r in rows),
        "requests": sum(len(r["requests"]) for r in rows),
        "non_local_requests": sum(1 for r in rows for p in r["problems"] if p.startswith("request to another")),
        "pages_with_math": sum(r["arithmatex"] > 0 for r in rows),
        "formulas": sum(r["arithmatex"] for r in rows),
        "mjx_containers": sum(r["mjxContainers"] for r in rows),
    }
    return report


class ChromiumError(RuntimeError):
    pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", type=Path, help="a built site (default: build one into a temporary folder)")
    ap.add_argument("--chromium", help="the browser binary (default: $CHROMIUM, chromium on the PATH)")
    ap.add_argument("--page", action="append", help="check only this URL path (repeatable), e.g. /envs/DiracGAN-v0/")
    ap.add_argument("--json", type=Path, help="write the per-page findings here")
    ap.add_argument("--screenshots", type=Path, help="save a PNG of every page checked into this folder")
    ap.add_argument("-v", "--verbose", action="store_true", help="a line per page, not only the failing ones")
    args = ap.parse_args()
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("check_site: no Chromium found (apt-get install chromium, or --chromium PATH)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="check-site-") as tmp:
        site = args.site
        if site is None:
            site = Path(tmp) / "site"
            build_site(site)
        try:
            report = check(site, chromium, args.page, args.verbose, args.screenshots)
        except ChromiumError as e:
            print(f"check_site: {e}", file=sys.stderr)
            return 2
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    s = report["summary"]
    print(f"check_site: {s['pages']} pages, {s['failed_pages']} failing; {s['requests']} requests, "
          f"{s['non_local_requests']} to another host; {s['formulas']} formulas on {s['pages_with_math']} pages, "
          f"{s['mjx_containers']} rendered by MathJax ({report['browser']})")
    return 1 if s["failed_pages"] else 0


if __name__ == "__main__":
    sys.exit(main())
