"""The power-cap and node tables of the throughput-per-watt chapter (harness.analysis.power_caps), on tidy
tables shaped as harness.measuring.store.collect writes them."""

from __future__ import annotations

import math

import pandas as pd

from harness.analysis import power_caps


def _row(**kw):
    base = {
        "status": "ok",
        "model_id": "llama-3.1-8b",
        "task": "lm-arena-chat",
        "gpu": "1 x H100",
        "is_llm": True,
        "batch_size": 8.0,
        "power_limit_watts": math.nan,
        "sm_clock_mhz": math.nan,
        "median_itl_ms": 20.0,
        "energy_per_token_joules": 0.5,
        "energy_per_output_joules": 100.0,
        "node_energy_joules": math.nan,
        "node_energy_per_token_joules": math.nan,
        "gpu_share_of_node_fraction": math.nan,
        "avg_power_watts": 400.0,
        "avg_cpu_power_watts": math.nan,
        "avg_dram_power_watts": math.nan,
        "node_energy_note": "cpu: zeus/rapl (whole sockets and their DRAM: every process on the host)",
    }
    return base | kw


def test_cap_points_and_the_frontier():
    own = pd.DataFrame(
        [
            _row(),  # host limit: fast, costly
            _row(power_limit_watts=500.0, median_itl_ms=21.0, energy_per_token_joules=0.45),  # on the frontier
            _row(power_limit_watts=300.0, median_itl_ms=30.0, energy_per_token_joules=0.40),  # on the frontier
            _row(power_limit_watts=200.0, median_itl_ms=45.0, energy_per_token_joules=0.42),  # slower and costlier
            _row(power_limit_watts=300.0, sm_clock_mhz=1410.0, median_itl_ms=33.0, energy_per_token_joules=0.38),
            _row(status="failed", power_limit_watts=150.0),
            _row(is_llm=False, power_limit_watts=400.0),
            _row(task="gpqa", power_limit_watts=300.0),
        ]
    )
    points = power_caps.cap_points(own, task="lm-arena-chat")
    assert list(points["cap"]) == ["host limit", "500 W", "300 W", "300 W, SM 1410 MHz", "200 W"]
    assert set(points["series"]) == {"llama-3.1-8b, lm-arena-chat, 1 x H100, batch 8"}
    assert points["tokens_per_sec_per_watt"].tolist() == [1 / e for e in points["energy_per_token_joules"]]
    front = power_caps.frontier(points)
    assert list(front["cap"]) == ["host limit", "500 W", "300 W", "300 W, SM 1410 MHz"]  # 200 W is beaten
    assert len(power_caps.cap_points(own)) == 6  # both tasks


def test_node_table_keeps_runs_with_the_whole_node():
    own = pd.DataFrame(
        [
            _row(),
            _row(
                power_limit_watts=300.0,
                node_energy_joules=900.0,
                node_energy_per_token_joules=0.6,
                gpu_share_of_node_fraction=0.8,
                avg_cpu_power_watts=90.0,
                avg_dram_power_watts=10.0,
            ),
        ]
    )
    table = power_caps.node_table(own)
    assert len(table) == 1 and table.loc[0, "cap"] == "300 W"
    assert table.loc[0, "node_energy_per_token_joules"] == 0.6 and list(table.columns) == power_caps.NODE_COLUMNS


def test_a_cpu_only_host_says_what_it_cannot_measure():
    cpu = pd.DataFrame(
        [
            _row(
                energy_per_token_joules=math.nan,
                energy_per_output_joules=math.nan,
                gpu="1 x CPU",
                node_energy_note="cpu: not measured (no RAPL on this host: /sys/class/powercap/intel-rapl "
                "does not exist)",
            )
        ]
    )
    note = power_caps.cpu_only_note(cpu)
    assert "without a GPU energy counter" in note and "never 0 J" in note and "no power cap" in note
    assert "no RAPL on this host" in note
    assert power_caps.cap_points(cpu).empty and power_caps.node_table(cpu).empty
    assert power_caps.cpu_only_note(pd.DataFrame([_row()])) is None
    assert power_caps.cpu_only_note(cpu.iloc[0:0]) is None
