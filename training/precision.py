"""Mixed precision where it pays: bfloat16 on hardware that computes it natively, float32 elsewhere.

On a CPU without bfloat16 instructions (AVX-512 BF16 or AMX) Keras's ``mixed_bfloat16`` policy
still works but emulates the type and trains slower than float32, so asking for mixed precision
there falls back to float32 with a printed note instead of failing or silently slowing down.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import keras

MIXED = "mixed_bfloat16"
FULL = "float32"
#: CPU flags (Linux /proc/cpuinfo) of instructions that compute bfloat16 dot products natively.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bfloat16 natively (False where the flags can't be read)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}
    return bool(flags & BF16_CPU_FLAGS)


def has_accelerator() -> bool:
    """Whether Keras's backend sees a GPU or TPU (all of which compute bfloat16 natively)."""
    return any(not device.lower().startswith("cpu") for device in keras.distribution.list_devices())


def choose_policy(mixed: bool) -> tuple[str, str]:
    """The dtype policy to train with and a line saying why."""
    if not mixed:
        return FULL, "float32 (mixed precision off)"
    if has_accelerator():
        return MIXED, f"{MIXED} on the accelerator"
    if cpu_has_bf16():
        return MIXED, f"{MIXED}: this CPU computes bfloat16 natively"
    return FULL, "float32: this CPU has no bfloat16 instructions, where mixed precision would be slower"


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build models under policy ``name``, restoring the previous global policy afterwards.

    The policy is process-global, and a model may be served in the process that built one (a
    training run in a test or a notebook, next to the app's model): it must not stay changed after
    the model is built.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def float32_config(config: object) -> object:
    """``model.get_config()`` with every layer's mixed dtype policy replaced by float32.

    Serving runs in float32 (fast on every CPU, and numerically what the evaluation measured),
    so a model trained in mixed precision is saved for inference with float32 layers.
    """
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
            return {**config, "config": {**config["config"], "name": FULL}}
        return {key: float32_config(value) for key, value in config.items()}
    if isinstance(config, list):
        return [float32_config(value) for value in config]
    return config
