"""Slack notifier through the real slack-sdk `WebClient`.

Firing: `chat.postMessage` with Block Kit (severity and rule in the header, the summary, current vs
baseline with change, window and n, sample execution IDs, the runbook link and its first immediate
action, how to silence). Repeat: a reply in the firing message's thread, broadcast to the channel.
Resolve: a reply in the thread, then `chat.update` turns the firing message into its resolved form.

Every event-provided string goes through `alerts.escape`. The message carries Slack message
metadata (`notification_id`), so after a timeout the notifier can read the channel (or thread) and
tell whether the post landed before posting again.

Retries: the client is built with `retry_handlers=[]` on purpose. slack-sdk's
`RateLimitErrorRetryHandler` sleeps `Retry-After + random()` inside the call with `time.sleep`
(cannot be bounded, deferred or faked in tests); `ServerErrorRetryHandler` retries only 500/503;
`ConnectionErrorRetryHandler` re-sends a `chat.postMessage` after a reset connection that may have
been processed, which is how duplicates happen. `alerts.delivery` does all of that instead, with the
idempotency record and a metadata lookup before any re-send whose first outcome is unknown.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from http.client import HTTPException, RemoteDisconnected
from typing import Any
from urllib.error import URLError

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from alerts.dedup import DedupReason
from alerts.errors import DeliveryError
from alerts.escape import code, escape_control, escape_mrkdwn, plain, truncate
from alerts.notifiers.base import Notification, Receipt
from alerts.notifiers.evidence import related_rules, rollout_evidence, suspect_lines, versus_text
from monitor.contract.alert import Alert

REOPENED = DedupReason.REOPENED.value

log = logging.getLogger("agentmon.alerts.slack")

METADATA_EVENT_TYPE = "agentmon_notification"
HISTORY_SLACK_S = 300.0  # clock skew between us and Slack when searching for a message we may have sent
HISTORY_MAX_PAGES = 10
DIGEST_MAX_ITEMS = 40  # Slack allows 50 blocks per message
SEVERITY_EMOJI = {"P1": ":red_circle:", "P2": ":large_orange_circle:", "P3": ":large_yellow_circle:"}
RETRYABLE_SLACK_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def safe_link(url: str, label: str) -> str:
    """A Slack link whose URL cannot break out of `<url|label>`; non-http(s) URLs are shown as code."""
    if not url.lower().startswith(("https://", "http://")) or any(c.isspace() for c in url):
        return code(url)
    href = escape_control(url).replace("|", "%7C")
    text = escape_mrkdwn(label, 200).replace("|", "\u2223")
    return f"<{href}|{text}>"


def silence_hint(alert: Alert, command: str = "agentmon silence add") -> str:
    """A copy-pasteable command (shell-quoted: agent ids and labels are event data)."""
    agent = f" --agent {shlex.quote(alert.agent_id)}" if alert.agent_id is not None else ""
    labels = "".join(f" --label {shlex.quote(f'{k}={v}')}" for k, v in sorted(alert.labels.items()))
    return f"{command} --rule {alert.rule}{agent}{labels} --duration 2h --author \"$USER\" --reason '...'"


def _ts_text(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


class SlackBlocks:
    """Builds the Block Kit payloads. Pure: no client, no clock."""

    def __init__(self, silence_command: str = "agentmon silence add") -> None:
        self.silence_command = silence_command

    def header(self, alert: Alert, prefix: str = "") -> dict[str, Any]:
        agent = alert.agent_id if alert.agent_id is not None else "pipeline"
        text = f"{prefix}{alert.severity} {alert.rule} \u00b7 {agent}"
        return {"type": "header", "text": {"type": "plain_text", "text": plain(text, 150), "emoji": True}}

    def evidence_fields(self, alert: Alert) -> list[dict[str, Any]]:
        """Only fields that say something: no "0 vs n/a" for a finding without a baseline, no
        "0h · n=0" for one without a sample."""
        metric = alert.metric
        fields = [f"*Agent*\n{code(alert.agent_id) if alert.agent_id is not None else '_pipeline-wide_'}"]
        if _has_versus(alert) or _has_sample(alert):
            fields.append(f"*Metric*\n{code(metric.name)}")
        rollout = rollout_evidence(alert)
        if rollout is not None:
            fields.append("*Versions*\n" + "\n".join(escape_mrkdwn(line, 200) for line in rollout.lines()))
        elif _has_versus(alert):
            fields.append(f"*Current vs baseline*\n{_versus(alert)}")
        if _has_sample(alert):
            fields.append(f"*Window \u00b7 n*\n{escape_mrkdwn(metric.window, 40)} \u00b7 n={metric.n}")
        fields.append(f"*Since*\n{escape_mrkdwn(_ts_text(alert.at))}")
        if alert.labels:
            labels = " ".join(code(f"{k}={v}", 120) for k, v in sorted(alert.labels.items())[:8])
            fields.append(f"*Labels*\n{labels}")
        return [{"type": "mrkdwn", "text": truncate(f, 1900), "verbatim": True} for f in fields[:10]]

    def firing(
        self, alert: Alert, first_action: str | None, reason: str, follows: Alert | None = None
    ) -> list[dict[str, Any]]:
        """`follows`: the firing alert of the same agent whose thread this page is posted in."""
        emoji = SEVERITY_EMOJI.get(alert.severity, "")
        blocks: list[dict[str, Any]] = [self.header(alert, prefix=f"{emoji} " if emoji else "")]
        context = related_text(alert, follows)
        if context:
            blocks.append(_section(context))
        blocks += [
            _section(escape_mrkdwn(alert.summary, 2900)),
            {"type": "section", "fields": self.evidence_fields(alert)},
        ]
        suspects = suspects_text(alert)
        if suspects:
            blocks.append(_section(suspects))
        if alert.samples:
            samples = " ".join(code(s, 80) for s in alert.samples[:10])
            blocks.append(_section(f"*Sample executions*\n{samples}"))
        runbook = safe_link(alert.runbook_url, f"runbooks/{alert.rule}.md")
        # The first action is our own runbook text (trusted formatting), not event data: only the
        # control characters are escaped, so its `code` spans render.
        action = escape_control(truncate(first_action, 1500)) if first_action else "_see the runbook_"
        hint = silence_hint(alert, self.silence_command)
        blocks.append(_section(f"*Runbook* {runbook}\n*First action:* {action}"))
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "verbatim": True,
                        "text": truncate(
                            f"Silence during planned work: {code(hint, 600)}"
                            f" \u00b7 fingerprint {code(alert.fingerprint, 300)}"
                            f" \u00b7 {escape_mrkdwn(reason)}",
                            2900,
                        ),
                    }
                ],
            }
        )
        return blocks

    def repeat(self, alert: Alert, reason: str) -> list[dict[str, Any]]:
        what = "Firing again" if reason == REOPENED else "Still firing"
        text = f":repeat: *{what}* ({escape_mrkdwn(reason)}): {escape_mrkdwn(alert.summary, 2000)}"
        lines = [text, _evidence_line(alert), suspects_text(alert)]
        return [_section("\n".join(line for line in lines if line))]

    def resolved_reply(self, alert: Alert, firing: Alert | None = None) -> list[dict[str, Any]]:
        lasted = incident_duration(alert, firing)
        if alert.rule == MODEL_CHANGE_RULE:
            return [_section(model_baseline_text(alert, lasted))]
        text = (
            f":white_check_mark: *Resolved* at {escape_mrkdwn(_ts_text(alert.at))}"
            f"{f' after {lasted}' if lasted else ''}: {escape_mrkdwn(alert.summary, 2000)}"
        )
        evidence = _evidence_line(alert)
        return [_section(f"{text}\nNow {evidence}" if evidence else text)]

    def resolved_original(self, firing: Alert, resolved: Alert) -> list[dict[str, Any]]:
        """The firing message as it reads once the problem is over (via chat.update)."""
        lasted = incident_duration(resolved, firing)
        if resolved.rule == MODEL_CHANGE_RULE:  # not over by a rollback: the new checkpoint stays
            return [
                self.header(firing, prefix=":white_check_mark: NEW BASELINE "),
                _section(escape_mrkdwn(firing.summary, 2800)),
                {"type": "section", "fields": self.evidence_fields(firing)},
                _section(model_baseline_text(resolved, lasted)),
            ]
        return [
            self.header(firing, prefix=":white_check_mark: RESOLVED "),
            _section(f"~{escape_mrkdwn(firing.summary, 2800)}~"),
            {"type": "section", "fields": self.evidence_fields(firing)},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "verbatim": True,
                        "text": f"Resolved at {escape_mrkdwn(_ts_text(resolved.at))}"
                        f"{f' after {lasted}' if lasted else ''}; details in the thread."
                        f" Runbook {safe_link(firing.runbook_url, f'runbooks/{firing.rule}.md')}",
                    }
                ],
            },
        ]

    def digest(self, alerts: tuple[Alert, ...]) -> list[dict[str, Any]]:
        """One message for the day's hygiene findings (no page: nothing here needs a human now)."""
        shown = alerts[:DIGEST_MAX_ITEMS]
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": f":broom: Daily digest: {len(alerts)} hygiene finding{'s' if len(alerts) != 1 else ''}",
                    "emoji": True,
                },
            }
        ]
        for alert in shown:
            agent = code(alert.agent_id) if alert.agent_id is not None else "_pipeline-wide_"
            labels = " ".join(code(f"{k}={v}", 120) for k, v in sorted(alert.labels.items())[:4])
            runbook = safe_link(alert.runbook_url, f"runbooks/{alert.rule}.md")
            blocks.append(
                _section(
                    f"*{alert.severity} {escape_mrkdwn(alert.rule, 80)}* \u00b7 {agent} {labels}\n"
                    f"{escape_mrkdwn(alert.summary, 1500)}\nRunbook {runbook}"
                )
            )
        if len(alerts) > len(shown):
            blocks.append(_section(f"_and {len(alerts) - len(shown)} more (see `agentmon report`)_"))
        return blocks

    def fallback_text(
        self, alert: Alert, prefix: str = "", *, suspects: bool = False, follows: Alert | None = None
    ) -> str:
        """The notification text (push, screen readers): a firing or reminder names its suspects and
        what it follows."""
        agent = alert.agent_id if alert.agent_id is not None else "pipeline"
        after = f" (follows {escape_mrkdwn(follows.rule, 80)}, fired {_hhmm(follows.at)})" if follows else ""
        text = (
            f"{prefix}{alert.severity} {alert.rule} {escape_mrkdwn(agent, 128)}{after}:"
            f" {escape_mrkdwn(alert.summary, 400)}"
        )
        lines = suspect_lines(alert) if suspects else []
        if lines:
            text += " Suspects: " + "; ".join(escape_mrkdwn(line, 200) for line in lines)
        return truncate(text, 1200)


MODEL_CHANGE_RULE = "model_version_changed"


def model_baseline_text(resolved: Alert, lasted: str | None) -> str:
    """A `model_version_changed` resolve is not a rollback: after the hold period the new checkpoint
    counts as known, i.e. it is the baseline now (monitor/core/rules/models.py)."""
    model = resolved.labels.get("model", "the model")
    checkpoint = resolved.labels.get("resolved_model", "the new checkpoint")
    held = f" after {lasted}" if lasted else ""
    return (
        f":white_check_mark: *New baseline* at {escape_mrkdwn(_ts_text(resolved.at))}{held}:"
        f" {code(checkpoint)} is now the baseline checkpoint for {code(model)}. The provider's change stands"
        " (this is not a rollback); a later change away from it alerts again."
    )


def format_duration(seconds: float) -> str:
    """`42 min`, `1 h 42 min`, `2 d 3 h`; under a minute `< 1 min`."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "< 1 min"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def incident_duration(resolved: Alert, firing: Alert | None) -> str | None:
    """How long the incident lasted: from its episode start (else the firing) to the resolve."""
    start = resolved.episode_start or (firing.episode_start or firing.at if firing is not None else None)
    if start is None or resolved.at <= start:
        return None
    return format_duration((resolved.at - start).total_seconds())


def suspects_text(alert: Alert) -> str:
    """One line per suspect (their own sentence, event-derived: escaped); empty without suspects."""
    lines = suspect_lines(alert)
    if not lines:
        return ""
    return "*Suspects*\n" + "\n".join(f"\u2022 {escape_mrkdwn(line, 400)}" for line in lines)


def related_text(alert: Alert, follows: Alert | None) -> str:
    """What this page belongs to: the alert whose thread it is posted in, and the other related
    alerts of the same agent by rule name (those it could not be threaded under)."""
    parts = []
    if follows is not None:
        parts.append(
            f":link: Follows {code(follows.rule, 80)}, fired {escape_mrkdwn(_hhmm(follows.at))} (this thread)"
        )
    others = related_rules(alert, leaving_out=follows.fingerprint if follows is not None else None)
    if others:
        names = ", ".join(code(rule, 80) for rule in others[:5])
        parts.append(f"{'Also related' if follows is not None else ':link: Related'} (same agent): {names}")
    return "\n".join(parts)


def _hhmm(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%H:%M UTC")


def _has_versus(alert: Alert) -> bool:
    return alert.metric.current is not None and alert.metric.baseline is not None


def _has_sample(alert: Alert) -> bool:
    return alert.metric.n > 0


def _evidence_line(alert: Alert) -> str:
    parts = []
    if _has_versus(alert) or rollout_evidence(alert) is not None:
        parts.append(_versus(alert))
    if _has_sample(alert):
        parts.append(f"window {escape_mrkdwn(alert.metric.window, 40)}, n={alert.metric.n}")
    return ", ".join(parts)


def _versus(alert: Alert) -> str:
    return escape_mrkdwn(versus_text(alert), 400)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 2990), "verbatim": True}}


class SlackNotifier:
    def __init__(
        self,
        *,
        token: SecretStr,
        channel: str,
        api_url: str = "https://slack.com/api/",
        timeout_s: float = 10.0,
        first_action: Callable[[str], str | None] | None = None,
        silence_command: str = "agentmon silence add",
        channel_ids: MutableMapping[str, str] | None = None,
    ) -> None:
        if not isinstance(token, SecretStr):
            raise TypeError("the Slack token must be a pydantic SecretStr (from settings/environment)")
        self.channel = channel
        self.api_url = api_url
        self.blocks = SlackBlocks(silence_command)
        # callable rule -> first immediate action (or None)
        self._first_action = first_action or (lambda rule: None)
        self._channel_ids: MutableMapping[str, str] = channel_ids if channel_ids is not None else {}
        # The token goes straight into the client; this object's repr never shows it.
        self._client = WebClient(
            token=token.get_secret_value(),
            base_url=api_url,
            timeout=timeout_s,  # type: ignore[arg-type]  # urllib accepts a float timeout
            retry_handlers=[],
            logger=logging.getLogger("agentmon.alerts.slack.sdk"),
        )

    def __repr__(self) -> str:
        return f"SlackNotifier(channel={self.channel!r}, api_url={self.api_url!r}, token=**********)"

    # --- sending ------------------------------------------------------------------------------
    def send(self, notification: Notification) -> Receipt:
        alert = notification.alert
        thread = notification.thread
        metadata = {
            "event_type": METADATA_EVENT_TYPE,
            "event_payload": {
                "notification_id": notification.notification_id,
                "kind": notification.kind,
                "fingerprint": truncate(alert.fingerprint, 200),
            },
        }
        common: dict[str, Any] = {
            "unfurl_links": False,
            "unfurl_media": False,
            "link_names": False,
            "parse": "none",
            "metadata": metadata,
        }
        if notification.kind == "firing":
            # With a thread, a page of an agent incident already on the channel: a reply there,
            # broadcast so it still shows in the channel and notifies like a page.
            follows = notification.follows if thread is not None else None
            blocks = self.blocks.firing(alert, self._first_action(alert.rule), notification.reason, follows)
            data = self._call(
                "chat.postMessage",
                channel=thread.channel if thread else self.channel,
                thread_ts=thread.ts if thread else None,
                reply_broadcast=True if thread else None,
                text=self.blocks.fallback_text(alert, suspects=True, follows=follows),
                blocks=blocks,
                **common,
            )
        elif notification.kind == "repeat":
            data = self._call(
                "chat.postMessage",
                channel=thread.channel if thread else self.channel,
                thread_ts=thread.ts if thread else None,
                reply_broadcast=bool(thread),
                text=self.blocks.fallback_text(
                    alert,
                    prefix="Firing again: " if notification.reason == REOPENED else "Still firing: ",
                    suspects=True,
                ),
                blocks=self.blocks.repeat(alert, notification.reason),
                **common,
            )
        elif notification.kind == "digest":
            count = len(notification.digest)
            data = self._call(
                "chat.postMessage",
                channel=self.channel,
                text=f"Daily digest: {count} hygiene finding{'s' if count != 1 else ''}",
                blocks=self.blocks.digest(notification.digest or (alert,)),
                **common,
            )
        elif notification.kind == "note":
            if thread is None:
                return Receipt()
            emoji = ":mute:" if notification.reason.startswith("Silenced by ") else ":loud_sound:"
            text = f"{emoji} {escape_mrkdwn(notification.reason, 2800)}"
            data = self._call(
                "chat.postMessage",
                channel=thread.channel,
                thread_ts=thread.ts,
                text=truncate(notification.reason, 600),
                blocks=[_section(text)],
                **common,
            )
        elif notification.kind == "resolved":
            data = self._call(
                "chat.postMessage",
                channel=thread.channel if thread else self.channel,
                thread_ts=thread.ts if thread else None,
                text=self.blocks.fallback_text(
                    alert, prefix="New baseline: " if alert.rule == MODEL_CHANGE_RULE else "Resolved: "
                ),
                blocks=self.blocks.resolved_reply(alert, notification.firing_alert),
                **common,
            )
        else:  # mark_resolved: edit the firing message; idempotent, so a retry is harmless
            if thread is None:
                return Receipt()
            firing = notification.firing_alert or alert
            data = self._call(
                "chat.update",
                channel=thread.channel,
                ts=thread.message,
                text=self.blocks.fallback_text(
                    firing, prefix="New baseline: " if alert.rule == MODEL_CHANGE_RULE else "Resolved: "
                ),
                blocks=self.blocks.resolved_original(firing, alert),
            )
        channel = data.get("channel")
        if isinstance(channel, str) and not channel.startswith("#"):
            self._channel_ids.setdefault(self.channel, channel)
        in_thread = thread.ts if thread is not None and notification.kind == "firing" else None
        return Receipt(channel=channel, ts=data.get("ts"), thread_ts=in_thread)

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        payload = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._client.api_call(method, json=payload)
            return dict(response.data) if isinstance(response.data, dict) else {}
        except SlackApiError as exc:
            raise _api_error(method, exc) from None
        except TimeoutError as exc:
            raise DeliveryError(f"{method} timed out ({exc})", retryable=True, ambiguous=True) from None
        except URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise DeliveryError(f"{method} timed out ({reason})", retryable=True, ambiguous=True) from None
            # connection refused / DNS: the request never left; safe to resend
            raise DeliveryError(f"{method} could not connect: {reason}", retryable=True) from None
        except (ConnectionResetError, RemoteDisconnected, HTTPException, ConnectionError) as exc:
            raise DeliveryError(
                f"{method} lost the connection: {type(exc).__name__}", retryable=True, ambiguous=True
            ) from None
        except SlackClientError as exc:
            raise DeliveryError(f"{method} failed in the client: {type(exc).__name__}", retryable=False) from None

    # --- idempotency lookup -------------------------------------------------------------------
    def find_delivered(self, notification: Notification) -> Receipt | None:
        if notification.kind == "mark_resolved":
            return None  # chat.update is idempotent: just do it again
        thread = notification.thread
        if notification.kind in ("firing", "repeat", "resolved", "note") and thread is not None:
            data = self._call(
                "conversations.replies",
                channel=thread.channel,
                ts=thread.ts,
                include_all_metadata=True,
                limit=200,
            )
            found = self._match(data, notification, thread.channel)
            if found is not None and notification.kind == "firing":
                return Receipt(channel=found.channel, ts=found.ts, thread_ts=thread.ts)
            return found
        channel_id = self._channel_id()
        if channel_id is None:
            log.warning(
                "cannot check channel %s for notification %s: channel ID unknown (configure a channel ID)",
                self.channel,
                notification.notification_id,
            )
            return None
        # Newest first, from a little before the notification was enqueued; bounded pagination.
        oldest = None
        if notification.created_at is not None:
            oldest = f"{notification.created_at.timestamp() - HISTORY_SLACK_S:.6f}"
        cursor: str | None = None
        for _ in range(HISTORY_MAX_PAGES):
            data = self._call(
                "conversations.history",
                channel=channel_id,
                include_all_metadata=True,
                limit=200,
                oldest=oldest,
                cursor=cursor,
            )
            found = self._match(data, notification, channel_id)
            if found is not None:
                return found
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    def resolve_channel(self) -> str | None:
        """At start-up: the configured channel's ID, so the after-crash lookup can read its history
        (a name is looked up once with conversations.list, paged and bounded). None when no channel
        of that name is visible to the bot; DeliveryError when Slack refuses (e.g. `missing_scope`)."""
        return self._channel_id()

    def _channel_id(self) -> str | None:
        """The configured channel's ID: configured as one, learned from an earlier post (persisted by
        the caller's mapping), or looked up once by name with conversations.list."""
        if not self.channel.startswith("#"):
            return self.channel
        known = self._channel_ids.get(self.channel)
        if known:
            return known
        name = self.channel.lstrip("#")
        cursor: str | None = None
        for _ in range(20):  # bounded pagination
            data = self._call(
                "conversations.list",
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            for channel in data.get("channels") or []:
                if channel.get("name") == name and isinstance(channel.get("id"), str):
                    self._channel_ids[self.channel] = channel["id"]
                    return str(channel["id"])
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    @staticmethod
    def _match(data: dict[str, Any], notification: Notification, channel: str) -> Receipt | None:
        for message in data.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if (
                meta.get("event_type") == METADATA_EVENT_TYPE
                and payload.get("notification_id") == notification.notification_id
            ):
                return Receipt(channel=channel, ts=message.get("ts"))
        return None


def _api_error(method: str, exc: SlackApiError) -> DeliveryError:
    response = exc.response
    status = response.status_code
    data = response.data if isinstance(response.data, dict) else {}
    error = str(data.get("error", "")) if data else ""
    headers = response.headers or {}
    retry_after: float | None = None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                retry_after = max(0.0, float(raw))
            except (TypeError, ValueError):
                retry_after = None
    what = f"{method} -> HTTP {status}{f' {error}' if error else ''}"
    if data.get("needed"):  # missing_scope names the scope the token lacks
        what += f" (needs {data['needed']})"
    if status == 429 or error in ("ratelimited", "rate_limited"):
        wait = retry_after if retry_after is not None else 1.0
        return DeliveryError(f"{what} (rate limited)", retryable=True, retry_after_s=wait)
    if status >= 500 or error in RETRYABLE_SLACK_ERRORS:
        # A 5xx may come after Slack stored the message: check before posting again.
        return DeliveryError(what, retryable=True, retry_after_s=retry_after, ambiguous=True)
    return DeliveryError(what, retryable=False)
