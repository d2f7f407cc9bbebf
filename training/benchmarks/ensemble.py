"""Batched deep ensemble vs M sequential single models: one training step and one prediction pass.

    python training/benchmarks/ensemble.py --out training/reports/bench_ensemble.md

Same inputs and graph for both (random features over 20,000 nodes, k = 8 spatial and spectral edges
per node, the SpTGNN defaults); the baseline is the sequential loop over M single-member models,
measured in the same run. Devices: CPU (with --threads) and CUDA when present.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from soilcarbon_core.nn import SpTGNN, SpTGNNConfig
from soilcarbon_core.nn.sptgnn import NodeInputs


def _inputs(n: int, k: int, device: torch.device) -> tuple[NodeInputs, dict, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    nodes = NodeInputs(
        position=torch.randn(n, 3, generator=g),
        covariates=torch.randn(n, 18, generator=g),
        covariate_mask=torch.ones(n, dtype=torch.bool),
        time=torch.randn(n, 5, generator=g),
        time_mask=torch.ones(n, dtype=torch.bool),
    ).to(device)
    dst = torch.arange(n).repeat_interleave(k)
    edges = {
        name: (
            torch.stack([torch.randint(0, n, (n * k,), generator=g), dst]).to(device),
            torch.rand(n * k, a).to(device),
        )
        for name, a in (("spatial", 1), ("spectral", 2))
    }
    return nodes, edges, torch.randn(n, generator=g).to(device)


def _time(step, device: torch.device, repeats: int) -> float:
    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def measure(device: torch.device, members: int, n: int, repeats: int) -> dict:
    nodes, edges, labels = _inputs(n, 8, device)

    def config(m: int) -> SpTGNNConfig:
        return SpTGNNConfig(
            members=m, covariate_features=9, temporal=True, relations={"spatial": 1, "spectral": 2}
        )

    batched = SpTGNN(config(members)).to(device)
    singles = [SpTGNN(config(1)).to(device) for _ in range(members)]

    def train(models):
        def step():
            for model in models:
                out = model(nodes, edges, labels)
                (out.mean.square().mean() + out.variance.mean()).backward()

        return step

    def predict(models):
        def step():
            with torch.no_grad():
                for model in models:
                    model(nodes, edges, labels)

        return step

    result = {}
    for name, make in (("train step", train), ("prediction", predict)):
        sequential = _time(make(singles), device, repeats)
        together = _time(make([batched]), device, repeats)
        result[name] = {"sequential_s": sequential, "batched_s": together, "speed_up": sequential / together}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("training/reports/bench_ensemble.md"))
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    results = {str(d): measure(d, args.members, args.nodes, args.repeats) for d in devices}
    lines = [
        "# Batched ensemble vs sequential members",
        "",
        f"M = {args.members} members, {args.nodes:,} nodes, 8 spatial + 8 spectral edges per node, SpTGNN "
        f"defaults; CPU with {args.threads} torch threads. Baseline: the M single-member models one after "
        "the other, in the same run. Mean of "
        f"{args.repeats} repeats after a warm-up.",
        "",
        "| device | pass | sequential s | batched s | speed-up |",
        "|---|---|---:|---:|---:|",
    ]
    for device, passes in results.items():
        for name, r in passes.items():
            times = f"{r['sequential_s']:.3f} | {r['batched_s']:.3f}"
            lines.append(f"| {device} | {name} | {times} | {r['speed_up']:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(
        json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results}, indent=2)
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
