"""Tools for trying and testing agentmon on one machine: `broker.LocalBroker` (a real single-node
Kafka from Maven Central jars), `simulate.generate` (seasonal agents with injected incidents),
`demo` (what `make run` runs)."""
