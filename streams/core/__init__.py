"""The pure event-time core both drivers feed: decode -> engine -> rooms -> detector feed.

No Kafka, Faust, HTTP or file I/O here (`make lint` checks): the worker and
backtest hand it input and take its output.
"""
