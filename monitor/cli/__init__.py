"""The `agentmon` command line (`main.main`): one subcommand per job; `backtest` lives in its own
module."""
