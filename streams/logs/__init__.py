"""Recorded event logs: files, replay, record, simulate, backtest, scoring and the report."""
