"""For development: a real local Kafka broker from Maven Central jars, and `make demo`."""
