"""Trajectory reading, the grain-boundary metrics of METRICS.md, and reference comparison."""
