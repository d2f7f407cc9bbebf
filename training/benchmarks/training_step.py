"""Cost of one SpTGNN training step on Africa: the default against the alternatives we rejected.

    python training/benchmarks/training_step.py --out training/reports/bench_training_step.md

All variants take the same step (5-member ensemble, a batch of 1,024 destination nodes, forward,
backward, AdamW) over the training part of the first random fold of the Africa benchmark data:
- default: historical embeddings (the batch is encoded, its neighbours' states come from the cache);
- fresh neighbourhood: the batch's whole neighbourhood encoded at every step (no cache);
- graph_layers = 1: a feature-only relational layer before the readout (needs every node's state);
- width 64 instead of 32.
Mean time of ``--steps`` steps after one warm-up step; ratios against the default in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from soilcarbon_core.features import Normaliser
from soilcarbon_core.graph import GraphParams
from soilcarbon_core.nn import SpTGNN
from soilcarbon_core.predictor import reference_graph
from soilcarbon_training.datasets import load_africa, node_table
from soilcarbon_training.folds import random_folds
from soilcarbon_training.jobs import model_config_for
from soilcarbon_training.trainer import EnsembleTrainer, TrainConfig, _Graph


def _setup():
    dataset = load_africa()
    table, target = node_table(dataset), dataset.target
    train = random_folds(len(target), 5, seed=0)[0][0]
    table, target = table.select(train), target[train]
    normaliser = Normaliser.fit(table, target)
    graph = reference_graph(table, normaliser, GraphParams(), geographic=True)
    normaliser.fit_edges(graph.relations)
    edges = _Graph(normaliser.edges(graph.relations), len(target))
    labels = torch.as_tensor(normaliser.target(target), dtype=torch.float32)
    return table, normaliser.node_inputs(table), labels, edges


def _fresh_neighbourhood(network, nodes, labels, graph, batch):
    sources, edges = graph.incoming(batch, local_sources=True)
    reference, balance = network.reference_states(nodes.select(sources), {}, labels[sources])
    output = network.predict_queries(nodes.select(batch), edges, reference)
    return output._replace(balance=output.balance + balance), graph.within(batch, "spatial")


def _time_steps(trainer, network, labels, batches, forward) -> float:
    optimizer = trainer.configure_optimizer(network)
    times = []
    for batch in batches:
        started = time.perf_counter()
        output, spatial = forward(batch)
        loss = trainer.loss(output, labels[batch], None, spatial).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return float(np.mean(times[1:]))  # the first step warms up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("training/reports/bench_training_step.md"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    table, nodes, labels, graph = _setup()
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randperm(len(labels), generator=generator)[:1024] for _ in range(args.steps + 1)]
    variants = {
        "default (historical embeddings)": ({}, "cached"),
        "fresh neighbourhood (no cache)": ({}, "fresh"),
        "graph_layers = 1": ({"graph_layers": 1}, "cached"),
        "width 64": ({"hidden": 64}, "cached"),
    }
    seconds = {}
    for name, (overrides, mode) in variants.items():
        config = model_config_for(table, 5, **overrides)
        trainer = EnsembleTrainer(config, TrainConfig(), GraphParams(), geographic=True)
        network = SpTGNN(config).train()
        cache = trainer._encode_all(network, nodes)
        network.train()
        if mode == "fresh":

            def forward(batch, network=network):
                return _fresh_neighbourhood(network, nodes, labels, graph, batch)

        else:

            def forward(batch, trainer=trainer, network=network, cache=cache):
                return trainer._batch_output(network, nodes, labels, graph, batch, cache)

        seconds[name] = _time_steps(trainer, network, labels, batches, forward)
        print(f"{name}: {seconds[name]:.3f} s per step", flush=True)
    base = seconds["default (historical embeddings)"]
    lines = [
        "# SpTGNN training step",
        "",
        f"Africa, training part of random fold 1 ({len(labels):,} nodes, spatial + similarity relations), "
        f"5 members, batch 1,024, forward + backward + AdamW. torch threads: {args.threads}. Mean of "
        f"{args.steps} steps after a warm-up. Ratio: time over the default's, same run.",
        "",
        "| variant | s per step | ratio |",
        "|---|---:|---:|",
        *(f"| {name} | {s:.3f} | {s / base:.2f} |" for name, s in seconds.items()),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(
        json.dumps({"threads": args.threads, "seconds": seconds}, indent=2)
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
