"""The ensemble operators against explicit per-member, per-edge computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soilcarbon_core.nn import EnsembleLinear, RelationalAttention, SparseMoE
from soilcarbon_core.nn.scatter import edge_softmax


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_ensemble_linear_is_one_affine_map_per_member():
    layer = EnsembleLinear(3, 4, 5)
    x = torch.randn(3, 7, 4)
    out = layer(x)
    for m in range(3):
        expected = F.linear(x[m], layer.weight[m].T, layer.bias[m, 0])
        torch.testing.assert_close(out[m], expected)
    # A (N, in) input is shared by every member.
    shared = torch.randn(7, 4)
    torch.testing.assert_close(layer(shared), layer(shared.expand(3, 7, 4)))
    assert not torch.allclose(layer.weight[0], layer.weight[1])  # independent initialisation


@pytest.mark.parametrize("bias", [True, False])
def test_ensemble_linear_transposed_is_the_same_map_with_nodes_last(bias):
    layer = EnsembleLinear(3, 4, 2, bias=bias)
    x = torch.randn(3, 7, 4)
    for m in range(3):
        expected = x[m] @ layer.weight[m] + (layer.bias[m, 0] if bias else 0.0)
        torch.testing.assert_close(layer.transposed(x)[m], expected.T)
    shared = torch.randn(7, 4)
    torch.testing.assert_close(layer.transposed(shared), layer(shared).transpose(1, 2))


def test_edge_softmax_normalises_per_destination():
    logits = torch.randn(2, 9, 3)
    destination = torch.tensor([0, 0, 0, 2, 2, 3, 3, 3, 3])
    alpha = edge_softmax(logits, destination, num_nodes=5)
    for node in (0, 2, 3):
        rows = destination == node
        torch.testing.assert_close(alpha[:, rows], logits[:, rows].softmax(dim=1))


def _reference_attention(layer: RelationalAttention, target, source, edges, labels):
    """RelationalAttention written as loops over members, relations, nodes and their in-edges."""
    members, n_dst, dim = target.shape
    heads, width = layer.heads, dim // layer.heads
    out = torch.zeros_like(target)
    for m in range(members):
        src_in = torch.cat([source[m], labels[:, None]], dim=1) if layer.label_messages else source[m]
        message = torch.zeros(n_dst, dim)
        for relation, (index, attr) in edges.items():
            src_proj = src_in @ layer.source[relation].weight[m] + layer.source[relation].bias[m, 0]
            values, src_score = src_proj[:, :dim], src_proj[:, dim:]
            dst_score = target[m] @ layer.target[relation].weight[m]
            edge_score = attr @ layer.edge[relation].weight[m]
            aggregated = torch.zeros(n_dst, dim)
            for i in range(n_dst):
                incoming = (index[1] == i).nonzero().flatten()
                if len(incoming) == 0:
                    continue
                j = index[0, incoming]
                score = F.leaky_relu(src_score[j] + dst_score[i] + edge_score[incoming], 0.2)  # (k, H)
                alpha = score.softmax(dim=0)
                for h in range(heads):
                    part = slice(h * width, (h + 1) * width)
                    aggregated[i, part] = (alpha[:, h : h + 1] * values[j, part]).sum(0)
            message += aggregated @ layer.output[relation].weight[m]
        state = F.layer_norm(target[m] + message, (dim,))
        hidden = F.gelu(state @ layer.feed_forward[0].weight[m] + layer.feed_forward[0].bias[m, 0])
        out[m] = F.layer_norm(
            state + hidden @ layer.feed_forward[2].weight[m] + layer.feed_forward[2].bias[m, 0], (dim,)
        )
    return out


@pytest.mark.parametrize("label_messages", [False, True])
def test_relational_attention_equals_per_edge_loops(label_messages):
    layer = RelationalAttention(2, 8, {"spatial": 1, "spectral": 2}, heads=2, label_messages=label_messages)
    target, source = torch.randn(2, 5, 8), torch.randn(2, 6, 8)
    edges = {
        "spatial": (torch.tensor([[0, 1, 2, 5, 3], [0, 0, 1, 1, 4]]), torch.rand(5, 1)),
        "spectral": (torch.tensor([[4, 5, 0], [0, 2, 2]]), torch.rand(3, 2)),
    }
    labels = torch.randn(6)
    with torch.no_grad():
        fast = layer(target, source, edges, labels if label_messages else None)
        slow = _reference_attention(layer, target, source, edges, labels)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)


def test_relational_attention_ignores_unknown_and_empty_relations():
    layer = RelationalAttention(1, 8, {"spatial": 1}, heads=2)
    target = torch.randn(1, 4, 8)
    empty = {"spatial": (torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 1))}
    other = {"elevation": (torch.tensor([[0], [1]]), torch.rand(1, 2))}
    with torch.no_grad():
        alone = F.layer_norm(target, (8,))
        alone = F.layer_norm(alone + layer.feed_forward(alone), (8,))
        torch.testing.assert_close(layer(target, target, empty), alone)
        torch.testing.assert_close(layer(target, target, other), alone)


@pytest.mark.parametrize("grad", [True, False], ids=["dense", "dispatched"])
def test_sparse_moe_routes_to_exactly_top_k_and_mixes_their_outputs(grad):
    """Both ways of running the experts (dense in training, dispatched per expert for inference on
    CPU) equal a loop over members and experts."""
    moe = SparseMoE(2, 6, 4, experts=4, top_k=2, hidden=5)
    with torch.no_grad():  # biases start at zero: give them values so their layout is checked too
        moe.b_in.normal_()
        moe.b_out.normal_()
    x = torch.randn(2, 10, 6)
    with torch.set_grad_enabled(grad):
        y, balance = moe(x)
    assert y.requires_grad == grad
    gates = moe.gates
    assert ((gates > 0).sum(-1) == 2).all()
    torch.testing.assert_close(gates.sum(-1), torch.ones(2, 10))
    with torch.no_grad():  # the gates are the router's top-2 probabilities, renormalised
        probabilities = (x @ moe.router.weight + moe.router.bias).softmax(-1)
        top = probabilities.topk(2, dim=-1)
        expected_gates = torch.zeros(2, 10, 4).scatter(-1, top.indices, top.values / top.values.sum(-1, True))
    torch.testing.assert_close(gates, expected_gates)
    expected = torch.zeros(2, 10, 4)
    for m in range(2):
        for e in range(4):
            hidden = F.gelu(x[m] @ moe.w_in[m, e] + moe.b_in[m, e, 0])
            expected[m] += gates[m, :, e : e + 1] * (hidden @ moe.w_out[m, e] + moe.b_out[m, e, 0])
    torch.testing.assert_close(y.detach(), expected.detach(), rtol=1e-5, atol=1e-6)
    assert balance.shape == (2,)


def test_moe_balance_loss_is_one_when_routing_is_uniform_and_grows_when_it_collapses():
    moe = SparseMoE(1, 3, 2, experts=4, top_k=1)
    x = torch.randn(1, 64, 3)
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.bias.zero_()
        # Uniform probabilities (1/4) with every node routed to expert 0: E * (1 * 1/4) = 1.
        assert moe(x)[1].item() == pytest.approx(1.0)
        moe.router.bias[0, 0, 0] = 5.0  # collapse onto expert 0
        collapsed = moe(x)[1].item()
    assert collapsed > 3.5  # E * P_0 with P_0 = e^5 / (e^5 + 3) = 0.98
