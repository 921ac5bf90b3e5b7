"""What the subcommands share: the model flags, the settings they make, a FILE:LINE:COL."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nearline.config import ConfigStack, Settings
from nearline.errors import NearlineError


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    model: dict[str, Any] = {}
    for key, attr in (
        ("path", "model"),
        ("name", "model_name"),
        ("template", "template"),
        ("n_threads", "threads"),
        ("n_gpu_layers", "gpu_layers"),
        ("n_ctx", "ctx_size"),
    ):
        value = getattr(args, attr, None)
        if value is not None:
            model[key] = value
    out: dict[str, Any] = {"model": model} if model else {}
    if getattr(args, "log_level", None):
        out["log_level"] = args.log_level.upper()
    if getattr(args, "time_budget_ms", None) is not None:
        out["completion"] = {"time_budget_ms": args.time_budget_ms}
    return out


def settings_for(args: argparse.Namespace, root: Path | None = None) -> Settings:
    """Config files (the user's, the project's found upward from ``root``) under the flags."""
    return ConfigStack(root=root or Path.cwd(), flags=overrides(args)).load()


def add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="GGUF", help="GGUF file to use (default: embedded model)")
    p.add_argument("--model-name", metavar="NAME", help="a catalog model pulled before")
    p.add_argument("--template", help="prompt template id, or auto")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--gpu-layers", type=int, help="layers to offload to the GPU (-1: all)")
    p.add_argument("--ctx-size", type=int, help="context size in tokens")


def parse_location(text: str) -> tuple[Path, int, int]:
    """FILE:LINE:COL, 1-based; COL is the cursor column (end of line = last column + 1)."""
    try:
        file, line, col = text.rsplit(":", 2)
        line_no, col_no = int(line), int(col)
    except ValueError:
        raise NearlineError(f"expected FILE:LINE:COL (1-based), got {text!r}") from None
    if line_no < 1 or col_no < 1:
        raise NearlineError(f"LINE and COL count from 1, got {line_no}:{col_no}")
    return Path(file), line_no - 1, col_no - 1
