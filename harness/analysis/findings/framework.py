"""The study's framework as data: layers of knobs and properties -> latent metrics -> end metrics, with the
finding whose numbers show each edge. :func:`framework_graph` lays it out; the chart is drawn by the report
layer (:func:`harness.report.framework.framework_chart`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.findings.record import Finding

# The framework: layers of knobs and properties -> latent metrics -> end metrics. Each edge names the
# finding whose numbers show it in the data (None where the edge is an identity or a known mechanism).
FRAMEWORK_NODES = (
    # id, label, layer, description
    ("model_size", "Model size", "algorithm", "parameters the GPU must hold and read per token"),
    ("architecture", "Dense or MoE", "algorithm", "a mixture of experts activates a few parameters per token"),
    ("precision", "Weight precision", "algorithm", "BF16 or FP8 weights: bytes per parameter and math throughput"),
    ("output_length", "Output length (task, reasoning)", "algorithm", "tokens generated per response"),
    ("batch_knob", "Batch size knob", "software", "vLLM max_num_seqs, diffusion batch size"),
    ("parallelism", "Parallelism", "software", "tensor, expert or sequence parallel degrees across GPUs"),
    ("cpu_side", "Non-GPU bottlenecks", "software", "CPU-side preprocessing of images and videos"),
    ("gpu_generation", "GPU generation", "hardware", "H100 (80 GB, 700 W) or B200 (180 GB, 1,000 W)"),
    ("gpu_count", "GPU count", "hardware", "1, 2, 4 or 8 GPUs per configuration"),
    ("memory_footprint", "Memory footprint", "latent", "weights plus KV cache or activations"),
    ("memory_headroom", "Memory headroom", "latent", "GPU memory left for more concurrent work"),
    ("batch_reached", "Batch size reached", "latent", "requests or outputs actually processed together"),
    ("utilization", "GPU utilization", "latent", "how much of the GPU's compute and bandwidth is busy"),
    (
        "compute_volume",
        "Compute volume",
        "latent",
        "work per output: tokens x active parameters, steps x pixels x frames",
    ),
    ("time", "Time", "end", "latency per token or per batch, and total time"),
    ("power", "Power", "end", "average GPU power; a floor is drawn even when idle"),
    ("energy", "Energy per output", "end", "power x time / outputs"),
    ("throughput_per_watt", "Throughput per watt", "end", "outputs per second per watt = 1 / energy per output"),
)
FRAMEWORK_EDGES = (
    # source, target, mechanism, finding id
    ("model_size", "memory_footprint", "weights take memory", None),
    ("model_size", "compute_volume", "more parameters to read and multiply per token", "moe-vs-dense"),
    ("architecture", "compute_volume", "MoE activates few parameters per token", "moe-vs-dense"),
    ("precision", "memory_footprint", "FP8 halves the bytes per weight", "fp8-vs-bf16"),
    ("precision", "utilization", "FP8 kernels help large batches, cost at small ones", "fp8-vs-bf16"),
    ("output_length", "compute_volume", "more tokens per response", "reasoning-vs-chat"),
    ("output_length", "memory_footprint", "long contexts grow the KV cache", "qwen3-32b-b200"),
    ("batch_knob", "batch_reached", "the knob caps concurrency", "batch-size-effect"),
    ("parallelism", "memory_footprint", "weights split across GPUs", "multi-gpu"),
    ("parallelism", "utilization", "communication and smaller shards per GPU", "multi-gpu"),
    ("cpu_side", "utilization", "the GPU waits for inputs", "multimodal-overhead"),
    ("gpu_generation", "memory_headroom", "more memory per GPU", "b200-vs-h100"),
    ("gpu_generation", "time", "faster compute and memory", "b200-vs-h100"),
    ("gpu_generation", "power", "higher power limit and floor", "b200-vs-h100"),
    ("gpu_count", "memory_headroom", "more GPUs, more memory", "multi-gpu"),
    ("gpu_count", "power", "every GPU draws its floor", "multi-gpu"),
    ("memory_footprint", "memory_headroom", "what is left after weights and cache", None),
    ("memory_headroom", "batch_reached", "memory caps the batch", "qwen3-32b-b200"),
    ("batch_reached", "utilization", "bigger batches keep the GPU busy", "batch-size-effect"),
    ("utilization", "power", "a busy GPU draws more power", "batch-size-effect"),
    ("utilization", "time", "a busy GPU finishes more outputs per second", "batch-size-effect"),
    ("compute_volume", "time", "more work takes longer", "text-to-video-range"),
    ("time", "energy", "energy = power x time", None),
    ("power", "energy", "energy = power x time", None),
    ("energy", "throughput_per_watt", "throughput per watt = 1 / energy per output", None),
)
_LAYER_COLUMNS = {"algorithm": 0, "software": 0, "hardware": 0, "latent": 1, "end": 2}


def framework_graph(found: list[Finding] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes (with x, y layout in arbitrary plot units) and edges (with endpoints and, where ``found`` gives it,
    the evidence's summary)."""
    nodes = pd.DataFrame(FRAMEWORK_NODES, columns=["id", "label", "layer", "description"])
    nodes["column"] = nodes["layer"].map(_LAYER_COLUMNS)
    nodes["row"] = nodes.groupby("column").cumcount()
    sizes = nodes.groupby("column")["row"].transform("max") + 1
    tallest = int(sizes.max())
    # stagger the latent and end columns so that edges inside a column do not run through other nodes
    nodes["x"] = nodes["column"] * 1.0 + np.where(nodes["column"] > 0, 0.2 * (nodes["row"] % 2), 0.0)
    nodes["y"] = (nodes["row"] + 0.5) * tallest / sizes
    pos = nodes.set_index("id")[["x", "y"]]
    evidence = {f.id: f.summary for f in (found or [])}
    edges = pd.DataFrame(FRAMEWORK_EDGES, columns=["source", "target", "mechanism", "finding"])
    edges["x"], edges["y"] = pos.loc[edges["source"], "x"].to_numpy(), pos.loc[edges["source"], "y"].to_numpy()
    edges["x2"], edges["y2"] = pos.loc[edges["target"], "x"].to_numpy(), pos.loc[edges["target"], "y"].to_numpy()
    edges["finding"] = edges["finding"].fillna("identity or mechanism")
    edges["evidence"] = edges["finding"].map(evidence).fillna("")
    labels = nodes.set_index("id")["label"]
    edges["edge"] = labels.loc[edges["source"]].to_numpy() + " -> " + labels.loc[edges["target"]].to_numpy()
    # arrowhead position, short of the target node
    edges["ax"] = edges["x"] + 0.85 * (edges["x2"] - edges["x"])
    edges["ay"] = edges["y"] + 0.85 * (edges["y2"] - edges["y"])
    return nodes, edges
