"""Measuring: energy counters, telemetry, steady state, adaptive stopping, the sweep runner, the result store,
the environment capture and Slurm job arrays."""
