"""Benchmarks (`make bench`), not tests: each `bench_<area>.py` defines `run(work: Path) -> dict`.

Figures are ratios against a named peer run in the same process or session
(these machines are noisy); absolute times are recorded beside them.
"""
