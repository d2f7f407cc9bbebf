"""KG-FGNN: shapes, ensemble independence, missing features, per-target graphs, learning, fine-tuning,
the sample-similarity graph."""

from __future__ import annotations

import math

import pytest
import torch

from soilcarbon_core.nn.kgfgnn import KGFGNN, SampleAttention

FEATURES, CROP, CROPS = 5, 4, 3
MEAN, SD = 1.0, 2.0


def ring(features: int = FEATURES, hops: int = 1) -> torch.Tensor:
    """Each node linked to the nodes ``hops`` steps either side, weight 0.5."""
    graph = torch.zeros(features, features)
    for i in range(features):
        for step in range(1, hops + 1):
            graph[i, (i + step) % features] = graph[i, (i - step) % features] = 0.5
    return graph


def default_graphs() -> torch.Tensor:
    return torch.stack([ring(), ring(hops=2), torch.eye(FEATURES)])


def model(seed: int = 0, graphs: torch.Tensor | None = None, **options) -> KGFGNN:
    torch.manual_seed(seed)
    settings = {"members": 3, "hidden": 8, "layers": 2, "heads": 2, "latent": 3, "dropout": 0.0}
    return KGFGNN(
        default_graphs() if graphs is None else graphs,
        torch.full((FEATURES,), MEAN),
        torch.full((FEATURES,), SD),
        {CROP: CROPS},
        **(settings | options),
    ).eval()


def features(n: int, seed: int = 0) -> torch.Tensor:
    """Raw features: four numeric columns N(MEAN, SD^2), and a crop code."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=generator) * SD + MEAN
    x[:, CROP] = torch.randint(0, CROPS, (n,), generator=generator).float()
    return x


def test_output_shapes_and_positive_variance():
    x = features(7)
    x[0, 1], x[1, CROP] = math.nan, math.nan
    with torch.no_grad():
        out = model()(x)
    assert out.mean.shape == out.variance.shape == (3, 7, 3, 2)
    assert out.latent.shape == (7, 3) and out.reconstruction.shape == (7, FEATURES)
    assert torch.isfinite(out.mean).all() and (out.variance > 0).all()
    assert torch.isnan(out.reconstruction[:, CROP]).all()  # categorical: not reconstructed
    assert torch.isfinite(out.reconstruction[:, :CROP]).all()


def test_members_are_independent_and_seeded():
    x = features(6)
    with torch.no_grad():
        first, again, other = model(seed=0)(x), model(seed=0)(x), model(seed=1)(x)
    torch.testing.assert_close(first.mean, again.mean, rtol=0, atol=0)
    torch.testing.assert_close(first.variance, again.variance, rtol=0, atol=0)
    assert not torch.allclose(first.mean, other.mean)
    spread = (first.mean[0] - first.mean[1]).abs().min()  # every output of member 0 differs from member 1
    assert spread > 0


def test_standardisation_is_applied_and_a_zero_sd_counts_as_one():
    reference = model()
    unit = model(seed=5)
    unit.feature_mean.zero_()
    unit.feature_sd.fill_(1.0)
    weights = {k: v for k, v in reference.state_dict().items() if k not in ("feature_mean", "feature_sd")}
    unit.load_state_dict(weights, strict=False)
    x = features(5)
    standardised = (x - MEAN) / SD
    standardised[:, CROP] = x[:, CROP]  # crop codes pass through
    torch.testing.assert_close(reference.standardise(x), standardised)
    with torch.no_grad():
        torch.testing.assert_close(unit(standardised).mean, reference(x).mean)
    sd = torch.tensor([0.0, 1.0, math.nan, 2.0, 9.0])
    mean = torch.tensor([1.0, math.nan, 3.0, 4.0, 5.0])
    constant = KGFGNN(default_graphs(), mean, sd, {CROP: CROPS}, members=1)
    torch.testing.assert_close(constant.feature_sd, torch.tensor([1.0, 1.0, 1.0, 2.0, 1.0]))
    torch.testing.assert_close(constant.feature_mean, torch.tensor([1.0, 0.0, 3.0, 4.0, 0.0]))


def test_missing_feature_gives_finite_outputs_distinct_from_any_value():
    network = model()
    x = features(3)
    at_mean = x.clone()
    at_mean[:, 2] = MEAN  # standardised value 0
    missing = x.clone()
    missing[:, 2] = math.nan
    with torch.no_grad():
        out_mean, out_missing = network(at_mean), network(missing)
        out_all = network(torch.full((1, FEATURES), math.nan))
    assert torch.isfinite(out_missing.mean).all() and torch.isfinite(out_missing.variance).all()
    assert torch.isfinite(out_all.mean).all()  # nothing known at all: still a (wide) prediction
    assert (out_mean.mean - out_missing.mean).abs().min() > 0
    with pytest.raises(ValueError, match="Category codes"):
        network(torch.tensor([[1.0, 1.0, 1.0, 1.0, 7.0]]))


def test_changing_graph_t_changes_only_target_t():
    network, x = model(), features(8)
    with torch.no_grad():
        before = network(x).mean
        network.graphs[1] = torch.ones(FEATURES, FEATURES)
        after = network(x).mean
    torch.testing.assert_close(after[:, :, [0, 2]], before[:, :, [0, 2]], rtol=0, atol=0)
    assert (after[:, :, 1] - before[:, :, 1]).abs().min() > 0


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """y_n2o = x0 x1, y_co2 = x2, y_ch4 = -x3 (standardised x); period 2 = half of period 1 plus 0.2."""
    x = features(n, seed)
    s = (x - MEAN) / SD
    y = torch.stack([s[:, 0] * s[:, 1], s[:, 2], -s[:, 3]], dim=1)
    return x, torch.stack([y, 0.5 * y + 0.2], dim=-1)


def test_learns_a_multi_target_function():
    x, y = synthetic(128, seed=0)
    network = model(members=2, layers=1, hidden=16, latent=8).train()
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-2, foreach=True)
    for _ in range(200):
        out = network(x)
        # beta-NLL with beta = 0.5 (METHODS.md)
        nll = 0.5 * (out.variance.log() + (y - out.mean).square() / out.variance)
        loss = (out.variance.detach().sqrt() * nll).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    x_test, y_test = synthetic(400, seed=1)
    with torch.no_grad():
        prediction = network.eval()(x_test).mean.mean(0)
    r2 = 1 - (y_test - prediction).square().sum(0) / (y_test - y_test.mean(0)).square().sum(0)
    assert r2.min() > 0.9, r2


def snapshot(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in network.named_parameters()}


@pytest.mark.parametrize("mode", ["heads", "last_layer"])
def test_finetune_modes_train_only_their_parameters(mode):
    network = model().train()
    trainable = network.trainable_for_finetune(mode)
    before = snapshot(network)
    optimiser = torch.optim.Adam(trainable, lr=1e-2)
    x, y = synthetic(16, seed=2)
    loss = (network(x).mean - y).square().mean()
    loss.backward()
    optimiser.step()
    chosen = {id(p) for p in trainable}
    last_layers = tuple(f".stacks.{t}.1." for t in range(3)) if mode == "last_layer" else ()
    for name, parameter in network.named_parameters():
        tuned = name.startswith("members.") and any(
            part in name for part in (".heads.", ".readouts.", *last_layers)
        )
        assert (id(parameter) in chosen) == tuned == parameter.requires_grad, name
        changed = not torch.equal(parameter.detach(), before[name])
        if not tuned or ".heads." in name:  # (a readout key has no gradient while its query is 0)
            assert changed == tuned, name
    assert [id(p) for p in network.trainable_for_finetune("all")] == [id(p) for p in network.parameters()]
    assert all(p.requires_grad for p in network.parameters())
    with pytest.raises(ValueError, match="mode must be one of"):
        network.trainable_for_finetune("backbone")


def test_sample_attention_formula():
    torch.manual_seed(0)
    layer = SampleAttention(4)
    pooled, neighbours = torch.randn(2, 4), torch.randn(2, 3, 4)
    torch.testing.assert_close(layer(pooled, neighbours), pooled)  # zero output projection: no change
    torch.nn.init.normal_(layer.output.weight)
    for b in range(2):
        q = layer.query(pooled[b])
        alpha = torch.softmax(layer.key(neighbours[b]) @ q / 2.0, dim=0)
        expected = pooled[b] + layer.output(alpha @ layer.value(neighbours[b]))
        torch.testing.assert_close(layer(pooled, neighbours)[b], expected)


def test_sample_graph_reads_the_k_nearest_references():
    network = model(sample_graph_k=1)
    x, references = features(4, seed=3), features(6, seed=4)
    with torch.no_grad():
        without_bank = network(x).mean
        z_ref, h_ref, _ = network.encode(references)
        network.set_reference_bank(z_ref, h_ref)
        torch.testing.assert_close(network(x).mean, without_bank)  # untrained: zero message projection
        for member in network.members:
            for attention in member.samples:
                torch.nn.init.normal_(attention.output.weight)
        with_bank = network(x).mean
        assert (with_bank - without_bank).abs().min() > 0
        z = network.encode(x)[0]
        nearest = torch.cdist(z, z_ref).argmin(dim=1)
        assert torch.equal(network.nearest_references(z)[:, 0], nearest)
        # Changing a reference no query has as nearest changes nothing; changing a nearest one does.
        unused = next(r for r in range(6) if r not in nearest.tolist())
        moved = h_ref.clone()
        moved[:, unused] += 5.0
        network.set_reference_bank(z_ref, moved)
        torch.testing.assert_close(network(x).mean, with_bank)
        moved[:, nearest[0]] += 5.0
        network.set_reference_bank(z_ref, moved)
        assert not torch.allclose(network(x).mean[:, 0], with_bank[:, 0])
    assert "bank_latent" not in network.state_dict()
    with pytest.raises(ValueError, match="h_ref"):
        network.set_reference_bank(z_ref, h_ref[:, :3])
    with pytest.raises(ValueError, match="no sample graph"):
        model().set_reference_bank(z_ref, h_ref)
