"""Orchestration: the sweep runner, preflight, the frontier planner, Slurm arrays and the GPU check."""
