"""The shared vocabulary: tasks and their families, GPU specifications, precisions and their bytes.

Each fact is defined here once; every layer above imports it from here. Nothing here imports anything of
the harness but :mod:`harness.errors`.
"""
