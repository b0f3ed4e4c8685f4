"""The numerical engine: cells, kernels (CPU and CUDA), scoring, per-stream state and its
layout, hyperparameters, snapshots. Nothing here knows about input formats or Kafka."""
