"""docker-compose.yml is a valid Compose file and agrees with the local Kafka version."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_file_is_valid_per_docker_compose_config() -> None:
    command = compose_command()
    if command is None:  # `make test` installs one (scripts/test-deps.sh): never a skip
        pytest.fail("no docker compose client: run `make test-deps` (apt-get install -y docker-compose)",
                    pytrace=False)
    done = subprocess.run([*command, "-f", str(ROOT / "docker-compose.yml"), "--profile", "dashboards", "config"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "SLACK_BOT_TOKEN": "xoxb-test"})
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert set(rendered["services"]) == {"kafka", "topics", "worker", "alerts", "prometheus", "grafana"}
    alerts = rendered["services"]["alerts"]
    assert alerts["command"] == ["agentmon", "alerts", "run"]
    assert alerts["environment"]["AGENTMON_SLACK__BOT_TOKEN"] == "xoxb-test"  # the pipeline posts, with the token
    assert alerts["deploy"]["replicas"] == 2  # one consumer group, the notification log in Kafka
    assert "volumes" not in alerts  # nothing on disk: any replica takes any partition over
    assert alerts["environment"]["AGENTMON_ALERTING__NOTIFICATION_LOG"] == "kafka"


def test_compose_dashboards_are_behind_a_profile_and_mount_files_of_the_repository() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    profiled = {name for name, service in compose["services"].items() if service.get("profiles")}
    assert profiled == {"prometheus", "grafana"}
    for name in profiled:
        assert compose["services"][name]["profiles"] == ["dashboards"]
        for volume in compose["services"][name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose["services"]["prometheus"]["command"]
    # Prometheus reaches the workers over the compose network, on the port its scrape job names
    worker = compose["services"]["worker"]
    assert worker["environment"]["AGENTMON_WORKER__WEB_HOST"] == "0.0.0.0"
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["dns_sd_configs"][0]["names"] == ["worker"]
    assert str(scrape["dns_sd_configs"][0]["port"]) in worker["expose"]


def test_compose_kafka_image_matches_the_local_broker_version() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    pom = (ROOT / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert version is not None
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{version.group(1)}"
    kafka_env = compose["services"]["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    worker = compose["services"]["worker"]
    assert worker["command"] == ["agentmon", "worker"]
    assert worker["environment"]["AGENTMON_SLACK__BOT_TOKEN"] == "${SLACK_BOT_TOKEN:-}"
