"""The machine options every benchmark shares: allocator, torch threads, device (same flags, same set-up)."""

from __future__ import annotations

import argparse

import torch

import minmax_envs


def add_machine_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--default-allocator", action="store_true",
                    help="keep glibc's default malloc thresholds (default: minmax_envs.tune_cpu_allocator())")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def setup_machine(args: argparse.Namespace) -> torch.device:
    """Apply the allocator choice (to both sides of every ratio) and the thread count; return the device."""
    tuned = False if args.default_allocator else minmax_envs.tune_cpu_allocator()
    print("allocator: " + ("minmax_envs.tune_cpu_allocator() (freed memory kept)" if tuned else "glibc defaults"))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return torch.device(args.device)
