"""Start a vLLM server module as ``python -m MODULE ARGS...`` would, with its imports kept out of the
garbage collector's way.

    <engine python> harness/workloads/vllm_launch.py vllm.entrypoints.openai.api_server --model ... ...

Run by the engine's own interpreter (its venv has no harness package), so it imports nothing but the
standard library.

Why: importing torch and vLLM leaves about 640,000 objects that live as long as the process, and while
they pile up (and while the server then builds its configuration, tokenizer and model) Python's cyclic
collector traverses them again and again. On a 2-core host that is 3-6 of the 17-21 CPU-seconds each
server process spends starting (``benchmarks/server_start.py``), and a vLLM server pays it twice: in the
API server and again in the engine-core process, which the CPU build starts with the spawn method (a
spawned child first runs its parent's main module, as ``__mp_main__``: this file).

What: both processes import the server module with the collector paused, then ``gc.freeze()`` what the
imports left (moved to the collector's permanent generation, never traversed again) and resume it, before
any of vLLM's own start-up code runs. vLLM itself freezes its whole start-up heap once the server is up
(``vllm.utils.gc_utils.freeze_gc_heap``, in the API server and in the engine core), so while it serves the
collector sees what it would have seen under ``python -m``: the harness uses this launcher only with an
engine whose vLLM does that (:func:`harness.workloads.vllm_backend.engine_freezes_startup_heap`). The only
difference left is that the few cyclic garbage objects the imports themselves dropped (about 17,000 of
them) are kept instead of collected. Everything else is as under ``-m``: the server module's code runs as
``__main__`` with the same arguments (its top level a second time, after the import: under ``-m`` too
``__main__`` and an import of the module by name are two copies), and vLLM starts the engine core and its
workers itself. One thing ``-m`` allows and this does not: a spawned process whose target the server
module itself defines (pickle would look it up in this file); vLLM's targets live in its library modules.
"""

import gc
import importlib
import importlib.util
import os
import runpy
import sys

MODULE_ENV = "HARNESS_VLLM_SERVER_MODULE"  # read by spawned children, which get the parent's environment


def import_frozen(module: str) -> None:
    """Import ``module`` with the collector paused, then freeze what the import left."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        importlib.import_module(module)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: vllm_launch.py MODULE [ARGS...]")
    server_module = sys.argv[1]
    os.environ[MODULE_ENV] = server_module
    sys.argv = [server_module, *sys.argv[2:]]  # what the module's argument parser sees under -m
    if importlib.util.find_spec(server_module) is None:
        sys.exit(f"vllm_launch.py: no module named {server_module}")
    import_frozen(server_module)
    # __main__ stays this file (alter_sys=False), so spawned children run this launcher first, and the
    # processes they run are looked up in vLLM's own modules (the engine core's entry point is
    # vllm.v1.engine.core's), never in the server module's __main__ copy
    runpy.run_module(server_module, run_name="__main__", alter_sys=False)
elif __name__ == "__mp_main__" and os.environ.get(MODULE_ENV):
    # a process vLLM spawned (engine core, worker): under -m it would import the server module here too
    import_frozen(os.environ[MODULE_ENV])
