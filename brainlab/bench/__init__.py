"""Speed benchmarks behind `python -m brainlab bench`: ratios against baselines run in the same process."""
