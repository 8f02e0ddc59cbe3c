"""The `agentmon` command line (shared/design/CONTRACT.md section 4, and operations).

Each command imports what it needs inside its function: `agentmon --help` or `agentmon schema`
must not pay for importing faust, aiokafka and matplotlib (0.6 s here), and these imports hide no cycle
(tests/unit/test_layering.py checks every import, local ones included)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from monitor.cli.baselines import add_baselines_arguments, cmd_baselines
from monitor.settings import Settings, SettingsError, load_settings

#: services that set up their own logging (JSON lines) and keep the client's warnings
LONG_RUNNING = {"worker", "demo", "alerts", "otel"}
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "agent-event.v1.schema.json"
#: how long a command waits for Kafka to answer before it says the broker is unreachable
PREFLIGHT_TIMEOUT_S = 15.0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {value})")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {text})")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535 (got {value})")
    return value


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    broker: dict[str, object] = {}
    for name in ("port", "controller_port", "data_dir"):
        value = getattr(args, name, None)
        if value is not None:
            broker[name] = value
    settings = load_settings(args.config)
    if broker:
        overrides["broker"] = settings.broker.model_copy(update=broker)
        if "port" in broker:
            overrides["kafka"] = settings.kafka.model_copy(
                update={"bootstrap_servers": f"{settings.broker.host}:{broker['port']}"})
    return settings.model_copy(update=overrides) if overrides else settings


@contextmanager
def quiet_kafka_client(args: argparse.Namespace) -> Iterator[None]:
    """The Kafka client's retry chatter off while a long-running command checks that Kafka answers
    (it keeps its warnings once running); `--debug` keeps it."""
    client = logging.getLogger("aiokafka")
    level = client.level
    if not args.debug:
        client.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        client.setLevel(level)


def reads_kafka(args: argparse.Namespace) -> bool:
    """Commands whose own clients would wait out their request timeouts (30 s and more) before
    failing; the worker checks its topic too (cmd_worker)."""
    if args.command in ("topics", "silence", "baselines"):
        return True
    if args.command == "emit":  # a missing file is a usage error, said first
        return bool(args.file == "-" or Path(args.file).is_file())
    if args.command == "alerts":
        return getattr(args, "from_file", None) is None
    if args.command in ("review", "regression", "note"):  # a bad verdict or file is said first; they time out
        return False
    if args.command == "report":  # without --rollups (and --alerts) files it reads agent-rollups and agent-alerts
        return getattr(args, "rollups", None) is None and getattr(args, "alerts", None) is None
    return False


def preflight(args: argparse.Namespace) -> None:
    """Kafka must answer within PREFLIGHT_TIMEOUT_S before a command that reads it starts: one
    line and exit 1 otherwise, whichever command it is."""
    from monitor.kafka.topics import topic_names

    if reads_kafka(args):
        with quiet_kafka_client(args):
            asyncio.run(topic_names(load_settings(getattr(args, "config", None)), timeout_s=PREFLIGHT_TIMEOUT_S))


# ---- broker -------------------------------------------------------------------------------

def cmd_broker(args: argparse.Namespace) -> int:
    from monitor.local.broker import LocalBroker

    settings = _settings(args)
    broker = LocalBroker(settings.broker)
    if args.action == "start":
        already = broker.status().running
        started = time.monotonic()
        status = broker.start()
        note = "already running" if already else f"started in {time.monotonic() - started:.1f} s"
        print(f"kafka {note}: {status.describe()}")
    elif args.action == "stop":
        print("kafka stopped" if broker.stop() else "kafka was not running")
    else:
        status = broker.status()
        print(f"kafka {status.describe()}")
        return 0 if status.answering else 3
    return 0


# ---- topics -------------------------------------------------------------------------------

def cmd_topics(args: argparse.Namespace) -> int:
    from monitor.kafka.topics import create_topics, topic_specs

    settings = _settings(args)
    if args.partitions:
        settings.topics.events_partitions = args.partitions
    results = asyncio.run(create_topics(settings))
    purposes = {s.name: s.purpose for s in topic_specs(settings)}
    for r in results:
        state = "created" if r.created else "exists "
        print(f"{state} {r.name:<24} {r.partitions:>3} partitions  {purposes[r.name]}")
    for r in results:
        for difference in r.differs:
            print(f"warning: {r.name} exists with {difference}; an existing topic is left as it is "
                  "(kafka-topics.sh --alter / kafka-configs.sh change it)", file=sys.stderr)
    return 0


# ---- emit ---------------------------------------------------------------------------------

def cmd_emit(args: argparse.Namespace) -> int:
    from monitor.kafka.emit import emit_lines

    settings = _settings(args)
    options = {"from_line": args.from_line, "give_up_after_s": args.give_up_after, "summarise_interrupt": True}
    if args.file == "-":
        summary = asyncio.run(emit_lines(settings, sys.stdin.buffer, **options))
    else:
        path = Path(args.file)
        if not path.is_file():
            print(f"agentmon emit: no such file: {path}", file=sys.stderr)
            return 2
        with path.open("rb") as lines:
            summary = asyncio.run(emit_lines(settings, lines, **options))
    print(summary.describe(args.file))
    return 130 if summary.interrupted else 1 if summary.gave_up is not None else 0


# ---- worker -------------------------------------------------------------------------------

def cmd_worker(args: argparse.Namespace) -> int:
    from monitor.kafka.topics import require_events_topic
    from monitor.stream.worker import run_worker

    settings = _settings(args)
    if args.web_port:
        settings.worker.web_port = args.web_port
    # One line and exit 1 (unreachable) or 2 (no topic) here, before faust starts and logs its own
    # traceback; a worker that starts on a missing topic would wait for it without a word.
    with quiet_kafka_client(args):
        asyncio.run(require_events_topic(settings, timeout_s=PREFLIGHT_TIMEOUT_S))
    run_worker(settings)
    return 0


# ---- demo ---------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.local.demo import run_demo

    return run_demo(_settings(args))


# ---- schema -------------------------------------------------------------------------------

def schema_text() -> str:
    from monitor.contract.events import event_json_schema

    return json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n"


def cmd_schema(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    return 0


# ---- parser -------------------------------------------------------------------------------

class OneLineParser(argparse.ArgumentParser):
    """Bad usage is one line naming the command and what was wrong, and exit 2 (argparse's default
    prints the whole usage block first). Sub-commands inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="agentmon", description="Monitoring for AI agents in production (Kafka + faust).")
    parser.add_argument("--config", help="TOML settings file (default: $AGENTMON_CONFIG)")
    parser.add_argument("--debug", action="store_true", help="tracebacks and the Kafka client's own log lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("broker", help="start/stop/status of the local Kafka (KRaft, 127.0.0.1)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--port", type=port_number, help="broker port (default 9092)")
    p.add_argument("--controller-port", type=port_number, help="KRaft controller port (default 9093)")
    p.add_argument("--data-dir", type=Path, help="where logs and data live (default .local/kafka)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("topics", help="create agentmon's topics (idempotent)")
    p.add_argument("action", choices=["create"])
    p.add_argument("--partitions", type=positive_int, help="partitions of agent-events (default from settings: 6)")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser(
        "emit", help="send JSON-lines events to agent-events, validating each line",
        description="Send JSON-lines events to agent-events, validating each line. While Kafka is away, emit "
        "waits and retries (the producer is idempotent); if Kafka acknowledges nothing for --give-up-after "
        "seconds it stops, prints the last line up to which every event is in Kafka, and exits 1: run again "
        "with --from-line set to the line after it. Events after that line that reached Kafka anyway are "
        "sent twice then, which is safe: the worker drops an event_id it has already seen.")
    p.add_argument("file", help="JSONL file, or - for standard input")
    p.add_argument("--from-line", type=positive_int, default=1, metavar="N",
                   help="skip the lines before line N (numbered from 1, blank and invalid lines included)")
    p.add_argument("--give-up-after", type=positive_float, default=120.0, metavar="S",
                   help="seconds Kafka may acknowledge nothing while events wait before emit gives up (120)")
    p.set_defaults(func=cmd_emit)

    p = sub.add_parser("demo", help="the main job on the local default: local Kafka, simulated agents with "
                                    "incidents, a worker, alerts on the console")
    p.add_argument("--port", type=port_number, help="local broker port (default 9092)")
    p.add_argument("--controller-port", type=port_number, help="KRaft controller port (default 9093)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("worker", help="run a stream worker against Kafka (stops gracefully on SIGTERM)")
    p.add_argument("--web-port", type=port_number, help="port of /healthz, /metrics, /state (default 6066)")
    p.set_defaults(func=cmd_worker)

    add_baselines_arguments(sub).set_defaults(func=cmd_baselines)

    from monitor.cli.backtest import add_backtest_arguments, run_backtest_command
    from monitor.local.simulate import add_simulate_arguments, run_simulate_command

    p = sub.add_parser("backtest", help="replay JSONL events through the engine; alerts as JSONL")
    add_backtest_arguments(p)
    p.set_defaults(func=run_backtest_command)

    p = sub.add_parser("simulate", help="write a realistic multi-agent event stream (incidents injectable)")
    add_simulate_arguments(p)
    p.set_defaults(func=run_simulate_command)

    from monitor.report.cli import add_report_arguments, run_report_command

    p = sub.add_parser("report", help="weekly maintenance review (Markdown/HTML/JSON with charts; Slack optional)")
    add_report_arguments(p)
    p.set_defaults(func=run_report_command)

    from alerts.cli import add_alerts_arguments, add_silence_arguments, run_alerts_command, run_silence_command

    add_alerts_arguments(sub).set_defaults(func=run_alerts_command)
    add_silence_arguments(sub).set_defaults(func=run_silence_command)

    from monitor.cli.otel import add_otel_arguments, run_otel_command
    from monitor.cli.records import add_record_arguments

    add_record_arguments(sub)

    add_otel_arguments(sub).set_defaults(func=run_otel_command)

    from monitor.cli.rollout import add_rollout_arguments, run_rollout_command

    add_rollout_arguments(sub).set_defaults(func=run_rollout_command)

    p = sub.add_parser("schema", help="print or write the JSON Schema of an event")
    p.add_argument("--out", default="-", help=f"file to write (default stdout); committed copy: {SCHEMA_FILE}")
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: 0 done, 2 bad usage or settings, 1 Kafka unreachable (one line
    on stderr each, no traceback), 130 interrupted."""
    from aiokafka.errors import KafkaError

    from monitor.contract.events import EventError
    from monitor.kafka.topics import TopicError
    from monitor.local.broker import BrokerError

    args = build_parser().parse_args(argv)
    if not args.debug and args.command not in LONG_RUNNING:
        # a short command says in one line what went wrong; the client's retry chatter adds nothing
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        if getattr(args, "config", None) is not None:
            load_settings(args.config)  # every command refuses a bad --config file, even one it does not read
        preflight(args)
        return int(args.func(args))
    except (BrokerError, SettingsError, EventError, TopicError) as exc:
        if args.debug:
            raise
        print(f"agentmon {args.command}: {exc}", file=sys.stderr)
        return 2
    except (KafkaError, OSError) as exc:
        if args.debug or (isinstance(exc, OSError) and not isinstance(exc, ConnectionError)):
            raise
        servers = _bootstrap_servers(args)
        print(f"agentmon {args.command}: Kafka at {servers} is unreachable ({exc}); start the local one with "
              "`agentmon broker start`, or set kafka.bootstrap_servers", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # a command's own error wrapping an unreachable broker (the alert pipeline's silences, ...)
        if args.debug or not _unreachable(exc):
            raise
        print(f"agentmon {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 1


def _unreachable(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NoBrokersAvailable

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KafkaConnectionError | KafkaTimeoutError | NoBrokersAvailable | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _bootstrap_servers(args: argparse.Namespace) -> str:
    try:
        return load_settings(getattr(args, "config", None)).kafka.bootstrap_servers
    except SettingsError:
        return "the configured address"


if __name__ == "__main__":
    sys.exit(main())
