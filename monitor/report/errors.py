"""Errors of the report package: each says what was wrong, with the value and where."""

from __future__ import annotations


class ReportError(ValueError):
    """A report request or its recorded input is unusable (bad week, unreadable file, ...)."""


class ReportSourceError(ReportError):
    """Rollups or alerts could not be read from their source (file, topic)."""


class SlackUploadError(ReportError):
    """The report could not be uploaded to Slack."""
