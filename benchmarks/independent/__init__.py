"""Nights livewatch's detectors were not designed around: real public chat logs with
floods injected into them, real RTT traces as rooms' latency levels (read from a data
directory, never from the repository: see docs/detectors.md for where to get them)."""
