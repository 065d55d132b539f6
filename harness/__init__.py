"""Where do the joules go? A harness that measures and diagnoses the time and
energy of generative-AI inference.

One module per concern: ``config`` (typed study configs), ``energy`` (Zeus
windows), ``telemetry`` (NVML sampler, vLLM metrics), ``steady`` (steady-state
windows and validity), ``workloads`` (vLLM, transformers, diffusers backends),
``store`` (run folders, atomic writes, the tidy table), ``reference`` (the
paper's published measurements), ``analysis`` (pure functions over tidy
tables) and ``cli`` (``python -m harness``).
"""

__version__ = "0.1.0"
