"""The HTML review is self-contained: opened in headless Chromium (Debian's `chromium` package)
it renders its charts, and it references nothing outside itself."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from monitor.report.analysis import build_review
from monitor.report.config import ReportSettings
from monitor.report.output import write_report
from monitor.report.review import WeeklyReview
from monitor.report.week import IsoWeek
from tests.support.report_week import REPORT_WEEK, simulated_alerts, simulated_rollups

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHARTS_PER_AGENT = 5  # changes, signals over the week, escalations, cost, tool errors
# attributes through which a browser loads something by itself
LOADING_ATTRS = {"src", "srcset", "poster", "data", "background", "action", "formaction", "manifest"}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.style_text = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style_text += data


# Chromium's own background services (time, updates, accounts) still call home despite the flags;
# they are not the page's loads.
BROWSER_SERVICE_HOSTS = re.compile(r"(^|\.)(google\.com|googleapis\.com|gstatic\.com|gvt1\.com|gvt2\.com)$")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _RecordingProxy:
    """A local HTTP proxy that answers nothing and records which hosts the browser asked for."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.hosts: list[str] = []
        self.idle = threading.Event()
        self.idle.set()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.idle.clear()
            try:
                with conn:
                    conn.settimeout(2)
                    head = conn.recv(4096).decode("latin-1")
                    if not head:
                        continue  # a preconnect that closed without a request: nothing was asked for
                    target = head.split(" ", 2)[1] if head.count(" ") >= 2 else head[:80]
                    self.hosts.append(re.sub(r"^[a-z]+://", "", target).split("/", 1)[0].rsplit(":", 1)[0])
            except OSError:
                pass
            finally:
                self.idle.set()

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def proxy() -> Iterator[_RecordingProxy]:
    recording = _RecordingProxy()
    yield recording
    recording.close()


def _page_loads(page: Path, proxy: _RecordingProxy, tmp_path: Path) -> list[str]:
    """Hosts the page made Chromium contact (every non-loopback request goes through the proxy)."""
    profile = tmp_path / f"profile-{page.stem}"
    profile.mkdir()
    subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={tmp_path / 'p.png'}",
         "--window-size=1280,2000", f"--proxy-server=http://127.0.0.1:{proxy.port}",
         "--proxy-bypass-list=<-loopback>", f"file://{page}"],
        capture_output=True, timeout=120, check=False,
    )
    proxy.idle.wait(5)  # the last connection is recorded
    return [h for h in proxy.hosts if not BROWSER_SERVICE_HOSTS.search(h)]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed: run `make test-deps` (apt-get install -y chromium)", pytrace=False)
    return found


@pytest.fixture(scope="module")
def review() -> WeeklyReview:
    return build_review(simulated_rollups(), simulated_alerts(), IsoWeek.parse(REPORT_WEEK),
                        ReportSettings(monthly_budget_usd=100.0), source="simulated week")


@pytest.fixture(scope="module")
def html_file(review: WeeklyReview, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(review, tmp_path_factory.mktemp("report"), ["html"])["html"]


def test_html_references_nothing_outside_itself(html_file: Path, review: WeeklyReview) -> None:
    text = html_file.read_text()
    parser = _Collector()
    parser.feed(text)
    tags = {t for t, _ in parser.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "frame", "base", "video", "audio", "source"}
    assert "url(" not in parser.style_text and "@import" not in parser.style_text and "@font-face" not in text
    meta = [a for t, a in parser.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert meta and "default-src 'none'" in meta[0]["content"] and "img-src data:" in meta[0]["content"]
    links = []
    for tag, attrs in parser.tags:
        for name, value in attrs.items():
            if name in LOADING_ATTRS:
                assert value.startswith("data:image/png;base64,"), (tag, name, value[:80])
            if name == "style":
                assert "url(" not in value
            if "http://" in value or "https://" in value:
                assert (tag, name) == ("a", "href"), (tag, name, value)
                links.append(value)
    # runbooks are plain links, one per alert episode and one per open incident on the agenda
    episodes = sum(len(a.alerts.episodes) for a in review.agents) + len(review.pipeline_alerts.episodes)
    on_agenda = sum(1 for item in review.agenda if item.kind == "open incident")
    assert on_agenda >= 1
    assert len(links) == episodes + on_agenda and all(link.endswith(".md") for link in links)


def test_charts_are_embedded_pngs(html_file: Path, review: WeeklyReview) -> None:
    parser = _Collector()
    parser.feed(html_file.read_text())
    images = [a["src"] for t, a in parser.tags if t == "img"]
    assert len(images) == CHARTS_PER_AGENT * len(review.agents)
    for src in images:
        png = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert png.startswith(PNG_MAGIC)
        with Image.open(io.BytesIO(png)) as img:
            assert img.width >= 300 and img.height >= 100
            assert len(img.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10  # a chart, not a blank


def test_each_sampled_execution_carries_the_command_to_record_its_verdict(html_file: Path,
                                                                          review: WeeklyReview) -> None:
    text = html.unescape(html_file.read_text())
    picks = [(a.agent_id, p.execution.execution_id) for a in review.agents for p in a.sample]
    assert len(picks) >= 20
    for agent, execution_id in picks:
        assert f"agentmon review mark {execution_id} --agent {agent} --pass" in text


def test_the_agenda_comes_first_and_the_signals_sit_beside_the_timeline(html_file: Path) -> None:
    text = html_file.read_text()
    assert text.index("This week's agenda") < text.index("At a glance") < text.index('id="agent-')
    assert text.count('<div class="beside"><img class="chart"') == 2  # one signal chart per agent, with its timeline
    assert "Changes timeline" in text


def test_headless_chromium_renders_the_page(html_file: Path, tmp_path: Path) -> None:
    shot = tmp_path / "weekly-review.png"
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    cmd = [
        _chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2000", f"file://{html_file}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert shot.is_file(), f"no screenshot; chromium exit {done.returncode}: {done.stderr[-2000:]}"
    assert shot.stat().st_size > 50_000
    with Image.open(shot) as img:
        assert img.size == (1280, 2000)
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 22) or []
        assert len(colours) > 200  # text, tables and charts, not a blank or error page
        # the top of the page is the report (white background, dark text), not chromium's error page
        top = rgb.crop((0, 0, 1280, 120)).getcolors(maxcolors=1 << 20) or []
        assert max(top)[1] == (255, 255, 255)
        # the first chart (changes against the baseline) renders its red "worse" bars
        assert any(c == (192, 57, 43) for _, c in colours)
    keep = os.environ.get("AGENTMON_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


def test_chromium_loads_nothing_from_the_network(html_file: Path, tmp_path: Path, proxy: _RecordingProxy) -> None:
    assert _page_loads(html_file, proxy, tmp_path) == []


def test_the_network_check_sees_external_loads(tmp_path: Path, proxy: _RecordingProxy) -> None:
    """Control: the same harness catches a page that loads an image and a style sheet."""
    page = tmp_path / "leaky.html"
    page.write_text('<html><head><link rel="stylesheet" href="http://styles.example.org/a.css"></head>'
                    '<body><img src="https://images.example.com/x.png"></body></html>')
    loads = _page_loads(page, proxy, tmp_path)
    assert "styles.example.org" in loads and "images.example.com" in loads
