"""Workload backends: each one starts, drives the load, reports per-request or
per-iteration records, and stops. The contract is in :mod:`harness.workloads.base`.
"""
