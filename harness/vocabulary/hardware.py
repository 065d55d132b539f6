"""GPU specifications: one table, from the vendors' data sheets (SXM parts, dense BF16)."""

from __future__ import annotations

SPEC_SOURCE = "from the vendor's data sheet: SXM part, dense BF16"

# memory in GB (1e9 bytes), bandwidth in TB/s, dense BF16 tensor throughput in TFLOP/s, board power (TDP) in W.
GPU_SPECS: dict[str, dict[str, float]] = {
    "H100": {"memory_gb": 80.0, "bandwidth_tb_per_s": 3.35, "bf16_dense_tflops": 989.0, "tdp_watts": 700.0},
    "B200": {"memory_gb": 180.0, "bandwidth_tb_per_s": 8.0, "bf16_dense_tflops": 2250.0, "tdp_watts": 1000.0},
    "H200": {"memory_gb": 141.0, "bandwidth_tb_per_s": 4.8, "bf16_dense_tflops": 989.0, "tdp_watts": 700.0},
    "A100": {"memory_gb": 80.0, "bandwidth_tb_per_s": 2.039, "bf16_dense_tflops": 312.0, "tdp_watts": 400.0},
}

# The reference's GPUs (the published data's two generations).
REFERENCE_GPUS: tuple[str, ...] = ("H100", "B200")
# The TDP table the reference's validator uses (its power checks): H100 and B200 only.
REFERENCE_TDP_WATTS: dict[str, float] = {g: GPU_SPECS[g]["tdp_watts"] for g in REFERENCE_GPUS}
# GPU memory in GB, every GPU the table knows.
GPU_MEMORY_GB: dict[str, float] = {g: spec["memory_gb"] for g, spec in GPU_SPECS.items()}
# vLLM's default share of GPU memory it may use (weights + KV cache).
GPU_MEMORY_UTILIZATION = 0.9
