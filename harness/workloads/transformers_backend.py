"""LLMs on plain transformers: for hosts with torch and transformers but no vLLM.

The model is built from the architecture's ``config.json`` with random weights
directly on the device (nothing is downloaded). Requests get the same drawn
prompt and output lengths as on vLLM (:mod:`harness.workloads.lengths`) and
are served with *static batching*: all are submitted at once, and batches of
up to ``max_num_seqs`` requests, in arrival order, are prefilled together
(left-padded) and decoded one token per step until every member reached its
forced length; a finished request leaves the batch (its KV-cache rows are
dropped) and the next batch starts only when the whole batch is done. Unlike
vLLM's continuous batching, the batch therefore drains before it is refilled,
so the average running batch stays below ``max_num_seqs`` and the validity
check on batch saturation reports it.

Each step ends with a device synchronisation, then every running request gets
that step's token time. The meter's ``"steady"`` window is opened and closed
online by :class:`harness.measuring.steady.SteadyTracker`; ``"run"`` covers the load.
A CUDA out-of-memory error fails the run with cause ``oom``. With ``stop: adaptive`` the load ends
when :class:`harness.measuring.adaptive.AdaptiveStopper` says so (polled after every step).

Options: :data:`OPTION_TABLE` (``max_prompt_tokens``, ``output_length_scale``, ``device``,
``attn_implementation``, ``greedy``, ``weights``), with their types, defaults and meanings.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import Configuration
from harness.errors import ConfigError, HarnessError
from harness.workloads.base import (
    LoggingBackend,
    Meter,
    StampClock,
    WorkloadError,
    WorkloadResult,
    one_device_problems,
    package_version,
)
from harness.workloads.options import Opt, defaults

if TYPE_CHECKING:
    from harness.workloads.archs import LLMFacts

OPTION_TABLE = {
    "max_prompt_tokens": Opt("int", minimum=1, doc="cap on drawn prompt lengths, in tokens"),
    "output_length_scale": Opt(
        "number", above=0, default=1.0, doc="factor on drawn output lengths (before max_output_tokens)"
    ),
    "device": Opt(
        "choice",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        doc="where the model runs (auto: CUDA when torch sees it, else the CPU)",
    ),
    # transformers' built-in kernels only: any other string may name a hub repository of kernels, code it downloads
    "attn_implementation": Opt(
        "choice",
        choices=("eager", "sdpa", "flex_attention", "flash_attention_2", "flash_attention_3"),
        default="sdpa",
        doc="transformers' attention implementation (its built-in kernels only)",
    ),
    "greedy": Opt("bool", default=True, doc="true: argmax; false: sample"),
    "weights": Opt(
        "string",
        doc="a local Hugging Face model folder with real weights, or a Hugging Face model id "
        "from the local cache or the hub, loaded instead of random ones (prompts stay "
        "synthetic token ids)",
    ),
}
OPTIONS = defaults(OPTION_TABLE)  # views of the table for the study reader (harness.config)
OPTION_SPECS = OPTION_TABLE
DTYPES = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}


class TransformersBackend(LoggingBackend):
    """Backend ``transformers``: see the module docstring."""

    name = "transformers"
    tasks = ("lm-arena-chat", "gpqa", "sourcegraph-fim")
    option_table = OPTION_TABLE
    metrics_url = None

    def __init__(self) -> None:
        self.model: Any = None  # the torch model once started
        self.torch: Any = None  # the torch module once started
        self.device: Any = None  # a torch.device once started
        self.log_path: Path | None = None
        self.info: dict = {}
        self.plan: Any = None  # harness.workloads.lengths.LengthPlan once started
        self.prompts: list[list[int]] = []
        self.pad_id = 0

    @classmethod
    def preflight_problems(cls, cfg: Configuration, facts: LLMFacts | None = None) -> list[str]:
        """One device only."""
        return one_device_problems(cls.name, cfg)

    def start(self, cfg: Configuration, run_dir: Path) -> None:
        """Build the model on the device and draw the requests' lengths and prompts (not measured)."""
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        from harness.workloads import archs, lengths

        self.options = self.resolve_options(cfg)
        if cfg.precision not in DTYPES:
            raise WorkloadError(
                f"the transformers backend runs {', '.join(DTYPES)}, not {cfg.precision}", cause="unsupported"
            )
        layout = self.preflight_problems(cfg)
        if layout:
            raise WorkloadError(layout[0], cause="unsupported")
        want = self.options["device"]
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want == "cuda" and not torch.cuda.is_available():
            raise WorkloadError("device cuda asked for but torch sees no CUDA device", cause="unsupported")
        self.torch, self.device = torch, torch.device(want)
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = run_dir / "server.log"

        try:
            model_folder = archs.llm_folder(cfg.model, self.options["weights"])
        except ConfigError as exc:
            raise WorkloadError(str(exc), cause="bad-config") from None
        folder = model_folder.path
        try:
            self.plan = lengths.plan_for(cfg)
        except HarnessError as exc:  # bad length options, or the published lengths unreadable here
            cause, message = lengths.reference_failure(exc)
            raise WorkloadError(message, cause=cause) from None
        hf = AutoConfig.from_pretrained(folder)
        self.pad_id = hf.eos_token_id if isinstance(hf.eos_token_id, int) else 0
        self.prompts = lengths.prompt_token_ids(
            self.plan.prompt_tokens, model_folder.regular_ids, model_folder.bos_token_id, int(cfg.seed or 0)
        )
        dtype = getattr(torch, DTYPES[cfg.precision])
        torch.manual_seed(int(cfg.seed or 0))
        t0 = time.time()
        self._log(
            f"building {cfg.model} ({hf.architectures}) on {self.device} in {cfg.precision}: {model_folder.weights}"
        )
        attn = self.options["attn_implementation"]
        try:
            if model_folder.dummy:
                with self.device:
                    model = AutoModelForCausalLM.from_config(hf, dtype=dtype, attn_implementation=attn)
            else:
                model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, attn_implementation=attn)
                model = model.to(self.device)
        except torch.OutOfMemoryError as exc:
            raise WorkloadError(
                f"out of memory while building {cfg.model}: {exc}", log_tail=self.log_tail(), cause="oom"
            ) from None
        self.model = model.eval()
        params = sum(p.numel() for p in model.parameters())
        forward = inspect.signature(model.forward).parameters
        self._keep_kw = (
            "logits_to_keep"
            if "logits_to_keep" in forward
            else ("num_logits_to_keep" if "num_logits_to_keep" in forward else None)
        )
        self._sync()
        self.info = {
            "engine": "transformers (static batching)",
            "transformers_version": package_version("transformers"),
            "torch_version": torch.__version__,
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "dtype": cfg.precision,
            "parameters": int(params),
            "architecture": cfg.model,
            "architecture_digest": model_folder.digest,
            "tokenizer_sha256": model_folder.tokenizer_sha256,
            "weights": "random (built from config.json)" if model_folder.dummy else model_folder.weights,
            "build_s": round(time.time() - t0, 3),
            "lengths": self.plan.as_info(),
        }
        self._log(f"built {params / 1e6:.1f} M parameters in {self.info['build_s']} s")

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def _forward(self, **kwargs):
        if self._keep_kw:
            kwargs[self._keep_kw] = 1
        return self.model(**kwargs)

    def _next(self, logits):
        last = logits[:, -1, :]
        if self.options["greedy"]:
            return last.argmax(-1)
        probs = self.torch.softmax(last.float(), dim=-1)
        return self.torch.multinomial(probs, 1).squeeze(-1)

    def _serve_batch(self, rows: list[int], records, tracker, clock, stopper) -> bool:
        """Serve one static batch; True when the adaptive stopper ended the load during it."""
        torch = self.torch
        from transformers import DynamicCache

        prompts = [self.prompts[i] for i in rows]
        targets = [self.plan.output_tokens[i] for i in rows]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, p in enumerate(prompts):
            ids[j, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[j, width - len(p) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        out = self._forward(
            input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
        )
        cache = out.past_key_values
        nxt = self._next(out.logits)
        next_pos = positions[:, -1] + 1
        self._sync()
        active = list(range(len(rows)))
        produced = [0] * len(rows)

        def emit(t: float) -> None:
            stopper.tokens(len(active))
            for j in active:
                rec = records[rows[j]]
                produced[j] += 1
                rec.token_times_s.append(t)
                rec.output_tokens = produced[j]
                if produced[j] == 1:
                    rec.first_token_time_s = t
                    tracker.first_token(t)
                if produced[j] == targets[j]:
                    rec.finish_time_s = t
                    tracker.finished(t)

        emit(clock())
        while True:
            if stopper.poll():
                return True
            keep = [k for k, j in enumerate(active) if produced[j] < targets[j]]
            if not keep:
                return False
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                nxt, mask, next_pos = nxt[index], mask[index], next_pos[index]
                active = [active[k] for k in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
            out = self._forward(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=next_pos[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            nxt = self._next(out.logits)
            next_pos = next_pos + 1
            self._sync()
            emit(clock())

    def run(self, cfg: Configuration, meter: Meter) -> WorkloadResult:
        """Serve every request in static batches of ``max_num_seqs``, one synchronised step per token."""
        from harness.measuring import adaptive
        from harness.measuring.steady import SteadyTracker
        from harness.workloads.base import RequestRecord

        if self.model is None:
            raise WorkloadError("transformers backend run() before start()", cause="error")
        torch = self.torch
        n, m = len(self.prompts), cfg.knob("max_num_seqs")
        windows: dict = {}

        def open_steady():
            meter.begin("steady")

        def close_steady():
            windows["steady"] = meter.end("steady")

        tracker = SteadyTracker(m, n, on_open=open_steady, on_close=close_steady)
        stopper = adaptive.for_run(cfg, meter, tracker)
        clock = StampClock()
        submit = clock()
        records = [
            RequestRecord(
                request_id=i,
                prompt_tokens=len(self.prompts[i]),
                target_output_tokens=self.plan.output_tokens[i],
                output_tokens=0,
                submit_time_s=submit,
                first_token_time_s=None,
                finish_time_s=None,
            )
            for i in range(n)
        ]
        meter.begin("run")
        try:
            with torch.inference_mode():
                for start in range(0, n, m):
                    rows = list(range(start, min(n, start + m)))
                    self._log(f"batch of {len(rows)} requests (ids {rows[0]}..{rows[-1]})")
                    if self._serve_batch(rows, records, tracker, clock, stopper):
                        break
        except torch.OutOfMemoryError as exc:
            self._log(f"out of memory: {exc}")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            raise WorkloadError(
                f"out of memory at max_num_seqs={m}: {str(exc).splitlines()[0]}", log_tail=self.log_tail(), cause="oom"
            ) from None
        if tracker.state == "open":
            close_steady()
        windows["run"] = meter.end("run")
        stopped = adaptive.mark_stopped(records, stopper.stop_time_s) if stopper.stopped else 0
        self._log(
            f"served {n - stopped} requests, {sum(r.output_tokens for r in records)} tokens"
            + (f"; stopped early ({stopper.stopped_by}): {stopped} requests cut short" if stopped else "")
        )
        info = dict(self.info, steady_tracker_state=tracker.state, stopped_requests=stopped, stop=stopper.summary())
        return WorkloadResult(requests=records, windows=windows, server_log=self.log_path, info=info)

    def stop(self) -> None:
        """Drop the model and return its device memory."""
        self.model = None
        self._release_device()
