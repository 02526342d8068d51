"""labgrader's benchmarks: `python bench/run.py [NAME...]`."""
