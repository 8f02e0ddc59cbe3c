"""Model versions seen: which checkpoint (`resolved_model`) served each requested model, and any
change of checkpoint against the weeks before (a silent provider update)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.contract.rollup import Rollup
from monitor.report.review import CheckpointChange, CheckpointSeen, ModelVersionReview


def model_version_review(week: Sequence[Rollup], before: Sequence[Rollup]) -> ModelVersionReview:
    known: dict[str, set[str]] = {}
    for r in before:
        for model, checkpoints in r.resolved_models.items():
            known.setdefault(model, set()).update(checkpoints)
    spans: dict[tuple[str, str], list[datetime]] = {}
    for r in sorted(week, key=lambda r: r.hour):
        for model, checkpoints in r.resolved_models.items():
            for cp in checkpoints:
                span = spans.setdefault((model, cp), [r.hour, r.hour])
                span[1] = r.hour
    seen = [
        CheckpointSeen(model=m, resolved_model=cp, first_seen=s[0], last_seen=s[1],
                       new_this_week=cp not in known.get(m, set()))
        for (m, cp), s in sorted(spans.items())
    ]
    changes: list[CheckpointChange] = []
    for item in sorted(seen, key=lambda s: (s.first_seen, s.model)):
        # a new checkpoint behind a model that was served by another one before (this week or earlier)
        earlier = set(known.get(item.model, set()))
        earlier.update(s.resolved_model for s in seen if s.model == item.model and s.first_seen < item.first_seen)
        earlier.discard(item.resolved_model)
        if item.new_this_week and earlier:
            changes.append(CheckpointChange(model=item.model, before=sorted(earlier), after=item.resolved_model,
                                            first_seen=item.first_seen))
    return ModelVersionReview(seen=seen, changes=changes)
