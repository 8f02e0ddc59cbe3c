"""The worker's faust app without a broker: when each partition is first due a checkpoint, and
which of faust's sensors it keeps. Records through the app: test_worker_direct.py."""

from __future__ import annotations

from monitor.settings import KafkaSettings, Settings, TopicSettings, WorkerSettings
from monitor.stream.worker import create_app


def test_the_partitions_of_a_worker_are_first_due_a_checkpoint_at_staggered_times() -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                        topics=TopicSettings(events_partitions=4),
                        worker=WorkerSettings(checkpoint_interval_s=20, web_port=1))
    app = create_app(settings)
    app.finalize()
    app.conf.store = "memory://"
    runtime = app.agentmon  # type: ignore[attr-defined]
    for partition in (3, 0, 2):
        runtime.partition(partition, wall_now=1000.0)
    # due when now - last_checkpoint >= 20: partition 0 at 1020, 2 at 1010, 3 at 1005
    assert runtime.last_checkpoint == {0: 1000.0, 2: 990.0, 3: 985.0}


def test_faust_monitor_sensor_is_left_out_unless_asked_for() -> None:
    def sensors_after_init(keep: bool) -> tuple[bool, int]:
        settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                            worker=WorkerSettings(web_port=1, faust_monitor=keep))
        app = create_app(settings)
        app.finalize()
        app.on_init_dependencies()
        return app.monitor in set(app.sensors), len(set(app.sensors))

    assert sensors_after_init(False) == (False, 0)
    assert sensors_after_init(True) == (True, 1)
