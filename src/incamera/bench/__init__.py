"""Benchmarks run by ``incamera bench <name>``; each module has ``main(argv) -> int``."""
