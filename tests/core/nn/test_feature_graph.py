"""FeatureGraphAttention against its formula, its graph prior and its permutation equivariance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soilcarbon_core.nn.feature_graph import FeatureGraphAttention, graph_edges


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def adjacency(nodes: int = 6, seed: int = 1) -> torch.Tensor:
    """A symmetric weighted graph with some missing edges; node 2 has no edge but its (implicit) self loop."""
    weights = torch.rand(nodes, nodes, generator=torch.Generator().manual_seed(seed)) + 0.1
    keep = torch.rand(nodes, nodes, generator=torch.Generator().manual_seed(seed + 1)) < 0.5
    graph = torch.where(keep | keep.T, torch.maximum(weights, weights.T), 0.0)
    graph[2, :], graph[:, 2] = 0.0, 0.0
    graph.fill_diagonal_(0.0)
    graph[0, 0] = 0.5  # an explicit self-loop weight is kept; zero diagonal entries become 1
    return graph


def layer(dim: int = 8, heads: int = 2, score_dim: int | None = None) -> FeatureGraphAttention:
    torch.manual_seed(3)
    return FeatureGraphAttention(dim, heads, score_dim=score_dim).eval()


def reference(module: FeatureGraphAttention, x: torch.Tensor, graph: torch.Tensor) -> tuple:
    """The layer written as loops over samples, destinations, neighbours and heads."""
    batch, nodes, dim = x.shape
    heads, width, score_dim = module.heads, dim // module.heads, module.score_dim
    weights = graph.clone()
    diagonal = weights.diagonal()
    weights.diagonal().copy_(torch.where(diagonal > 0, diagonal, 1.0))
    w_source, b_source = module.source.weight, module.source.bias
    alpha = torch.zeros(batch, heads, nodes, nodes)
    out = torch.zeros_like(x)
    for b in range(batch):
        target_score = x[b] @ module.score_target.weight.T
        source = x[b] @ w_source.T + b_source
        source_score, values = source[:, :score_dim], source[:, score_dim:]
        message = torch.zeros(nodes, dim)
        for i in range(nodes):
            neighbours = [j for j in range(nodes) if weights[i, j] > 0]
            for h in range(heads):
                scores = torch.stack(
                    [
                        module.attention[:, h] @ F.leaky_relu(target_score[i] + source_score[j], 0.2)
                        + weights[i, j].log()
                        for j in neighbours
                    ]
                )
                a = scores.softmax(0)
                alpha[b, h, i, neighbours] = a
                part = slice(h * width, (h + 1) * width)
                message[i, part] = (a[:, None] * values[neighbours, part]).sum(0)
        # The standard sub-modules (Linear, LayerNorm, the FFN) are trusted; the attention is not.
        state = module.norm_attention(x[b] + module.output(message))
        out[b] = module.norm_feed_forward(state + module.feed_forward(state))
    return out, alpha


@pytest.mark.parametrize("score_dim", [None, 3])
def test_layer_equals_per_edge_loops(score_dim):
    module, graph, x = layer(score_dim=score_dim), adjacency(), randn(3, 6, 8)
    with torch.no_grad():
        module.norm_attention.weight.copy_(randn(8, seed=5))  # non-trivial affine LayerNorms
        module.norm_feed_forward.bias.copy_(randn(8, seed=6))
    out, alpha = module(x, graph, return_attention=True)
    torch.testing.assert_close(module(x, graph_edges(graph)), out)  # precomputed edges: the same layer
    expected_out, expected_alpha = reference(module, x, graph)
    assert out.shape == (3, 6, 8) and alpha.shape == (3, 2, 6, 6)
    torch.testing.assert_close(alpha, expected_alpha)
    torch.testing.assert_close(out, expected_out)


def test_attention_rows_are_distributions_on_the_graph():
    graph = adjacency()
    _, alpha = layer()(randn(4, 6, 8), graph, return_attention=True)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(4, 2, 6))
    off_graph = (graph == 0) & ~torch.eye(6, dtype=torch.bool)
    assert torch.all(alpha[:, :, off_graph] == 0)
    assert torch.all(alpha[:, :, ~off_graph] > 0)


def test_isolated_node_attends_only_to_itself():
    module, graph, x = layer(), adjacency(), randn(2, 6, 8)
    out, alpha = module(x, graph, return_attention=True)
    torch.testing.assert_close(alpha[:, :, 2], F.one_hot(torch.tensor(2), 6).float().expand(2, 2, 6))
    # Its state depends on nothing but itself: change every other node and it stays.
    other = x.clone()
    other[:, [0, 1, 3, 4, 5]] = randn(2, 5, 8, seed=9)
    torch.testing.assert_close(module(other, graph)[:, 2], out[:, 2])
    assert not torch.allclose(module(other, graph)[:, 0], out[:, 0])


def test_zero_scoring_vector_gives_the_row_normalised_adjacency():
    module, graph = layer(), adjacency()
    with torch.no_grad():
        module.attention.zero_()
    _, alpha = module(randn(2, 6, 8), graph, return_attention=True)
    weights = graph + torch.diag(torch.where(graph.diagonal() > 0, 0.0, 1.0))
    expected = weights / weights.sum(1, keepdim=True)
    torch.testing.assert_close(alpha, expected.expand(2, 2, 6, 6))
    assert alpha[0, 0, 0, 0] < alpha[0, 0, 2, 2] == 1.0  # the explicit 0.5 self loop is kept


def test_permuting_nodes_with_the_graph_permutes_the_output():
    module, graph, x = layer(), adjacency(), randn(2, 6, 8)
    permutation = torch.tensor([4, 2, 5, 0, 3, 1])
    out, alpha = module(x, graph, return_attention=True)
    out_p, alpha_p = module(x[:, permutation], graph[permutation][:, permutation], return_attention=True)
    torch.testing.assert_close(out_p, out[:, permutation])
    torch.testing.assert_close(alpha_p, alpha[:, :, permutation][:, :, :, permutation])


def test_graph_edges_and_bad_graphs():
    graph = torch.tensor([[0.0, 0.5, 0.0], [0.5, 2.0, 0.0], [0.0, 0.0, 0.0]])
    destination, source, log_weight, nodes = graph_edges(graph)
    assert nodes == 3 and destination.tolist() == [0, 0, 1, 1, 2] and source.tolist() == [0, 1, 0, 1, 2]
    torch.testing.assert_close(log_weight.exp(), torch.tensor([1.0, 0.5, 0.5, 2.0, 1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        graph_edges(-graph)
    with pytest.raises(ValueError, match="5 nodes but x has 6"):
        layer()(randn(1, 6, 8), torch.ones(5, 5))
    with pytest.raises(ValueError, match="square"):
        graph_edges(torch.ones(2, 3))
