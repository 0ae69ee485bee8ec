"""Kafka in one place: client options, topics, the partitioner, the dead-letter format."""
