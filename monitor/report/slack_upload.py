"""Posting the weekly review to Slack: the HTML page and a summary PNG, in one message, with
slack-sdk's `files_upload_v2` (files.getUploadURLExternal, upload, files.completeUploadExternal).

The channel must be a channel ID (`C...`): files.completeUploadExternal does not take names.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from monitor.report.charts import summary_chart
from monitor.report.errors import SlackUploadError
from monitor.report.html import render_html
from monitor.report.review import WeeklyReview
from monitor.settings import Settings

MAX_COMMENT_FINDINGS = 8


@dataclass(frozen=True, slots=True)
class UploadResult:
    channel: str
    file_ids: tuple[str, ...]


def _slack_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def summary_comment(review: WeeklyReview) -> str:
    """The message text: the week, the agents, the first findings."""
    lines = [f"*agentmon weekly review {review.week}* - {len(review.agents)} agent(s), "
             f"{len(review.findings)} finding(s)"]
    # findings name agents, tools and reasons (event data): Slack's control characters are escaped
    # so that none forms a mention (<!channel>) or a link
    lines += [f"• {_slack_text(f)}" for f in review.findings[:MAX_COMMENT_FINDINGS]]
    if len(review.findings) > MAX_COMMENT_FINDINGS:
        lines.append(f"... and {len(review.findings) - MAX_COMMENT_FINDINGS} more in the attached report")
    return "\n".join(lines)


def upload_review(
    review: WeeklyReview,
    settings: Settings,
    *,
    channel: str | None = None,
    html: str | None = None,
    client: WebClient | None = None,
    stem: str | None = None,
) -> UploadResult:
    """Upload the HTML report and the summary PNG to `channel` (default: settings.slack.channel)."""
    token = settings.slack.bot_token
    if token is None and client is None:
        raise SlackUploadError("slack.bot_token is not set (AGENTMON_SLACK__BOT_TOKEN)")
    target = channel or settings.slack.channel
    if client is None:
        assert token is not None
        client = WebClient(token=token.get_secret_value(), base_url=settings.slack.api_url, timeout=60)
    name = stem or f"weekly-review-{review.week}"
    page = html if html is not None else render_html(review)
    try:
        response = client.files_upload_v2(
            file_uploads=[
                {"content": page.encode("utf-8"), "filename": f"{name}.html", "title": f"Weekly review {review.week}"},
                {"content": summary_chart(review), "filename": f"{name}-summary.png",
                 "title": f"Weekly review {review.week}: summary", "alt_txt": "headline metrics per agent"},
            ],
            channel=target,
            initial_comment=summary_comment(review),
        )
    except SlackApiError as exc:
        raise SlackUploadError(f"Slack refused the upload to {target}: {exc.response.get('error')}") from None
    except (SlackRequestError, OSError) as exc:
        raise SlackUploadError(f"could not upload to Slack channel {target}: {exc}") from None
    files = response.get("files") or []
    return UploadResult(channel=target, file_ids=tuple(str(f.get("id")) for f in files))
