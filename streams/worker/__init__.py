"""The live worker: the Faust app around the pipeline, checkpoints and /metrics."""
