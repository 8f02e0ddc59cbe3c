"""agentmon's Kafka edges: `producer.AgentEventProducer` (and its synchronous twin), `topics`
(creating the topics), `emit` (sending JSON lines), `table` (reading a topic to its end), `baseline_control`
(operators' freeze commands on a compacted topic)."""
