"""Slack upload of the weekly review through the real slack-sdk WebClient (files_upload_v2)
against a local stand-in of Slack's file upload API."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from PIL import Image
from pydantic import SecretStr

from monitor.report.analysis import build_review
from monitor.report.cli import add_report_arguments, run_report_command
from monitor.report.errors import SlackUploadError
from monitor.report.html import render_html
from monitor.report.review import WeeklyReview
from monitor.report.slack_upload import upload_review
from monitor.report.week import IsoWeek
from monitor.settings import Settings, SlackSettings
from tests.support.fake_slack_files import FakeSlackFiles
from tests.support.report_week import REPORT_WEEK, simulated_alerts, simulated_rollups, write_jsonl

TOKEN = "xoxb-test-report"


@pytest.fixture(scope="module")
def review() -> WeeklyReview:
    return build_review(simulated_rollups(), simulated_alerts(), IsoWeek.parse(REPORT_WEEK), source="test")


def _settings(fake: FakeSlackFiles, channel: str = "C0REPORTS") -> Settings:
    return Settings(slack=SlackSettings(bot_token=SecretStr(TOKEN), api_url=fake.api_url, channel=channel))


def test_html_and_summary_png_are_uploaded_in_one_message(review: WeeklyReview) -> None:
    html = render_html(review)
    with FakeSlackFiles(token=TOKEN) as fake:
        result = upload_review(review, _settings(fake), html=html)
    state = fake.state
    assert [m for m, _ in state.requests] == ["files.getUploadURLExternal"] * 2 + ["files.completeUploadExternal"]
    assert result.channel == "C0REPORTS" and result.file_ids == tuple(sorted(state.files))
    files = {f.filename: f for f in state.files.values()}
    page, png = files[f"weekly-review-{REPORT_WEEK}.html"], files[f"weekly-review-{REPORT_WEEK}-summary.png"]
    assert page.data == html.encode() and page.declared_length == len(html.encode())
    assert png.data is not None and png.data.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(png.data)) as img:
        assert img.width > 500
    assert png.alt_txt and page.title == f"Weekly review {REPORT_WEEK}"
    [complete] = state.completed
    assert complete["channel_id"] == "C0REPORTS"
    assert complete["initial_comment"].startswith(f"*agentmon weekly review {REPORT_WEEK}* - 2 agent(s)")
    assert "Tue 03:00 UTC" in complete["initial_comment"]


def test_refusals_are_reported_with_the_reason(review: WeeklyReview) -> None:
    with FakeSlackFiles(token=TOKEN) as fake:
        with pytest.raises(SlackUploadError, match="channel_not_found"):
            upload_review(review, _settings(fake, channel="C0NOWHERE"), html="<p>x</p>")
        bad_token = Settings(slack=SlackSettings(bot_token=SecretStr("xoxb-wrong"), api_url=fake.api_url))
        with pytest.raises(SlackUploadError, match="invalid_auth"):
            upload_review(review, bad_token, html="<p>x</p>")
    with pytest.raises(SlackUploadError, match="bot_token"):
        upload_review(review, Settings())
    with pytest.raises(SlackUploadError, match="could not upload"):
        dead = Settings(slack=SlackSettings(bot_token=SecretStr(TOKEN), api_url="http://127.0.0.1:9/api/"))
        upload_review(review, dead, html="<p>x</p>")


def test_report_command_with_slack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rollups = write_jsonl(tmp_path / "rollups.jsonl", simulated_rollups())
    alerts = write_jsonl(tmp_path / "alerts.jsonl", simulated_alerts())
    with FakeSlackFiles(token=TOKEN) as fake:
        config = tmp_path / "agentmon.toml"
        config.write_text(f'[slack]\nbot_token = "{TOKEN}"\napi_url = "{fake.api_url}"\nchannel = "C0REPORTS"\n')
        parser = argparse.ArgumentParser()
        parser.add_argument("--config")
        add_report_arguments(parser)
        args = parser.parse_args(["--config", str(config), "--week", REPORT_WEEK, "--rollups", str(rollups),
                                  "--alerts", str(alerts), "--out", str(tmp_path / "out"), "--slack"])
        assert run_report_command(args) == 0
    assert "uploaded to Slack channel C0REPORTS: 2 file(s)" in capsys.readouterr().out
    uploaded = next(f for f in fake.state.files.values() if f.filename.endswith(".html"))
    assert uploaded.data == (tmp_path / "out" / f"weekly-review-{REPORT_WEEK}.html").read_bytes()
