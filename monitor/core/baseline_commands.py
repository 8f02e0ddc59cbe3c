"""Operators' baseline commands and what they change: freeze or unfreeze an agent's learned
baseline (`*`: all agents). The newest command per target is in force; one for an agent wins
over `*`; an agent no command names keeps what the engine decided. Pure: the Kafka topic that
carries the commands is read by `monitor.kafka.baseline_control`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pydantic import AwareDatetime, BaseModel, ConfigDict, StrictBool, ValidationError

from monitor.core.engine import Engine

log = logging.getLogger("agentmon.baseline_control")

ALL = "*"


class BaselineCommand(BaseModel):
    """One command in force: the value of a record (its key names the agent, or `*`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    frozen: StrictBool
    at: AwareDatetime
    by: str = ""
    reason: str = ""

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


# ---- the pure decision ----------------------------------------------------------------------

def apply_record(commands: dict[str, BaselineCommand], key: bytes | None, value: bytes | None,
                 where: str = "?") -> None:
    """Fold one record of the topic into `commands` (target -> command in force). A tombstone
    withdraws the target's command; a record without key or with an invalid value is logged and
    ignored (one bad record must not stop the others)."""
    if key is None:
        log.error("baseline control record without key at %s: ignored", where)
        return
    target = key.decode("utf-8", "replace")
    if value is None:
        commands.pop(target, None)
        return
    try:
        commands[target] = BaselineCommand.model_validate_json(value)
    except ValidationError as exc:
        log.error("invalid baseline control record %r at %s: %s", target, where, str(exc).splitlines()[0])


def command_for(commands: Mapping[str, BaselineCommand], agent_id: str) -> BaselineCommand | None:
    """The command that applies to `agent_id`: its own, else the `*` one, else None."""
    return commands.get(agent_id) or commands.get(ALL)


def desired_changes(commands: Mapping[str, BaselineCommand],
                    current: Mapping[str, bool]) -> dict[str, BaselineCommand]:
    """Agents (of `current`: agent id -> its baseline's frozen flag) whose flag a command asks to
    change, with that command. Commands naming agents not in `current` change nothing here."""
    changes: dict[str, BaselineCommand] = {}
    for agent_id, frozen in current.items():
        command = command_for(commands, agent_id)
        if command is not None and command.frozen != frozen:
            changes[agent_id] = command
    return changes


def apply_to_engine(commands: Mapping[str, BaselineCommand], engine: Engine,
                    partition: int | None = None) -> dict[str, BaselineCommand]:
    """Set the flags the commands ask for on `engine`; returns the agents changed (logged)."""
    changes = desired_changes(commands, engine.baseline_flags())
    for agent_id, command in changes.items():
        engine.freeze_baselines(agent_id, command.frozen)
        log.info("baseline of %s %s by command", agent_id, "frozen" if command.frozen else "unfrozen",
                 extra={"agent_id": agent_id, "partition": partition, "frozen": command.frozen,
                        "command": agent_id if agent_id in commands else ALL, "by": command.by,
                        "reason": command.reason, "command_at": command.at.isoformat()})
    return changes
