"""The Kafka daemon: consumer-group loop, per-partition state stores and metrics."""
