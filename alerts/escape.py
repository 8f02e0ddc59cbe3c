r"""Escaping of event-provided strings for Slack mrkdwn.

Slack's rules: `&`, `<` and `>` are control characters and must be sent as `&amp;`, `&lt;`, `&gt;`;
once they are, no `<!channel>`, `<@U123>`, `<#C1>` or `<http://x|y>` can be formed from our text.
Slack has no escape for the formatting characters `* _ ~ \``; where one of them stands at a word
boundary (the only place it can open or close bold, italic, strike or code), a zero-width space is put
next to it so it renders literally while identifiers like `lead_qualifier` stay intact and copyable.
"""

from __future__ import annotations

import re

ZWSP = "\u200b"
# A formatting char that touches the start/end, whitespace or punctuation on one side.
_AT_BOUNDARY = re.compile(r"(?:^|(?<=[\s\W]))[*_~`]|[*_~`](?=$|[\s\W])")
_BACKTICK_LOOKALIKE = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT: looks like ` but never closes code
_MAX_DEFAULT = 2000


def escape_control(text: str) -> str:
    """Slack's three control characters, `&` first so an existing entity is escaped too."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_mrkdwn(text: object, max_len: int = _MAX_DEFAULT) -> str:
    """Any event-provided value as inert mrkdwn text: no mentions, links or formatting."""
    value = truncate(str(text), max_len)
    value = escape_control(value)
    return _AT_BOUNDARY.sub(lambda m: _neutralise(m.group(0)), value)


def code(text: object, max_len: int = 200) -> str:
    """An identifier (agent id, rule, tool, execution id) as inline code: formatting is off inside
    code, so only the backtick (which would end it) and the control characters need handling."""
    value = escape_control(truncate(str(text), max_len)).replace("`", _BACKTICK_LOOKALIKE)
    return f"`{value}`" if value else "` `"


def plain(text: object, max_len: int = 150) -> str:
    """Text for a `plain_text` object (header): never parsed by Slack, but control characters are
    escaped anyway so the same string is inert if a client or a later change renders it as mrkdwn.
    Truncated before escaping (never inside an entity) and kept within `max_len` after it."""
    raw = str(text)
    limit = max_len
    while True:
        escaped = escape_control(truncate(raw, limit))
        if len(escaped) <= max_len or limit <= 1:
            return escaped
        limit = max(1, min(limit - 1, limit * max_len // len(escaped)))


def truncate(text: str, max_len: int) -> str:
    return text if len(text) <= max_len else text[: max(0, max_len - 1)] + "\u2026"


def _neutralise(char: str) -> str:
    return f"{ZWSP}{char}{ZWSP}"


__all__ = ["ZWSP", "code", "escape_control", "escape_mrkdwn", "plain", "truncate"]
