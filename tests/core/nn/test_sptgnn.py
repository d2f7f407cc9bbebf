"""SpTGNN invariants: masking, no label leakage, queries never change the references, batched members."""

from __future__ import annotations

import pytest
import torch

from soilcarbon_core.errors import InputError
from soilcarbon_core.nn import SpTGNN, SpTGNNConfig
from soilcarbon_core.nn.sptgnn import MIN_VARIANCE, NodeInputs

N = 12


def _nodes(n: int = N, seed: int = 0) -> NodeInputs:
    g = torch.Generator().manual_seed(seed)
    return NodeInputs(
        position=torch.randn(n, 3, generator=g),
        covariates=torch.randn(n, 6, generator=g),
        covariate_mask=torch.ones(n, dtype=torch.bool),
        imagery=torch.randn(n, 4, generator=g),
        imagery_mask=torch.ones(n, dtype=torch.bool),
        time=torch.randn(n, 5, generator=g),
        time_mask=torch.ones(n, dtype=torch.bool),
    )


def _ring(n: int = N) -> dict:
    """Symmetric ring edges (no self-loops) for two relations."""
    i = torch.arange(n)
    src = torch.cat([i, (i + 1) % n])
    dst = torch.cat([(i + 1) % n, i])
    far = torch.cat([i, (i + 3) % n]), torch.cat([(i + 3) % n, i])
    return {
        "spatial": (torch.stack([src, dst]), torch.rand(2 * n, 1)),
        "spectral": (torch.stack(far), torch.rand(2 * n, 2)),
    }


def _model(members: int = 3, **overrides) -> SpTGNN:
    settings = {
        "members": members,
        "imagery_features": 4,
        "covariate_features": 3,
        "temporal": True,
        "hidden": 16,
        "relations": {"spatial": 1, "spectral": 2},
        **overrides,
    }
    return SpTGNN(SpTGNNConfig(**settings)).eval()


@pytest.mark.parametrize("graph_layers", [0, 1])
def test_a_node_never_sees_its_own_label(graph_layers):
    model, nodes, edges = _model(graph_layers=graph_layers), _nodes(), _ring()
    labels = torch.randn(N)
    with torch.no_grad():
        before = model(nodes, edges, labels)
        changed = labels.clone()
        changed[4] += 10.0
        after = model(nodes, edges, changed)
    # Node 4's own prediction does not move; its neighbours' (which receive its label) do.
    torch.testing.assert_close(after.mean[:, 4], before.mean[:, 4])
    torch.testing.assert_close(after.variance[:, 4], before.variance[:, 4])
    assert not torch.allclose(after.mean[:, 5], before.mean[:, 5])


def test_masked_stream_ignores_its_values_and_is_not_zero_filling():
    model, nodes, edges = _model(), _nodes(), _ring()
    labels = torch.randn(N)
    nodes.imagery_mask[2] = False
    with torch.no_grad():
        base = model(nodes, edges, labels)
        nodes.imagery[2] = 100.0  # garbage behind the mask must not matter
        assert torch.equal(model(nodes, edges, labels).mean, base.mean)
        nodes.imagery[2] = 0.0
        nodes.imagery_mask[2] = True  # zeros as data are something else than "missing"
        zero_filled = model(nodes, edges, labels)
    assert not torch.allclose(zero_filled.mean[:, 2], base.mean[:, 2])


def test_queries_do_not_change_references_and_chunks_are_independent():
    model, nodes, edges = _model(graph_layers=1), _nodes(), _ring()
    labels = torch.randn(N)
    queries = _nodes(5, seed=1)
    query_edges = {
        "spatial": (torch.tensor([[0, 1, 2, 3, 4, 5, 6], [0, 0, 1, 2, 3, 4, 4]]), torch.rand(7, 1)),
        "spectral": (torch.tensor([[7, 8, 9], [0, 2, 4]]), torch.rand(3, 2)),
    }
    with torch.no_grad():
        reference, _ = model.reference_states(nodes, edges, labels)
        before = model(nodes, edges, labels)
        together = model.predict_queries(queries, query_edges, reference)
        after = model(nodes, edges, labels)
        # Queries 0-1 alone (their edges only) give the same as within the whole batch.
        first = {k: (idx[:, idx[1] < 2], attr[idx[1] < 2]) for k, (idx, attr) in query_edges.items()}
        alone = model.predict_queries(queries.select(torch.arange(2)), first, reference)
    torch.testing.assert_close(after.mean, before.mean)
    torch.testing.assert_close(alone.mean, together.mean[:, :2])
    torch.testing.assert_close(alone.variance, together.variance[:, :2])


def neighbour_tables(edges: dict, num_queries: int) -> dict:
    """Attached edges (row 0 reference, row 1 query) as padded per-query neighbour tables.

    Shapes: per relation ``(edge_index (2, E), edge_attr (E, A))`` -> ``(ids (Q, K), attr (Q, K, A))``
    with K the largest in-degree and -1 in empty slots (queries with fewer neighbours)."""
    tables = {}
    for name, (edge_index, edge_attr) in edges.items():
        source, query = edge_index
        counts = torch.bincount(query, minlength=num_queries)
        slots = int(counts.max()) if counts.numel() else 0
        first = torch.cumsum(counts, 0) - counts
        slot = torch.arange(query.numel(), device=query.device) - first[query]
        ids = torch.full((num_queries, slots), -1, dtype=torch.long, device=query.device)
        attr = edge_attr.new_zeros(num_queries, slots, edge_attr.shape[1])
        ids[query, slot] = source
        attr[query, slot] = edge_attr
        tables[name] = (ids, attr)
    return tables


@pytest.mark.parametrize("graph_layers", [0, 1])
def test_neighbour_table_path_equals_the_edge_path(graph_layers):
    """The fast query path (padded tables, softmax over slots, weighted bag sums) is the same layer:
    queries with different in-degrees, one with no edge in a relation, and a relation absent altogether."""
    model, nodes, edges = _model(graph_layers=graph_layers), _nodes(), _ring()
    labels = torch.randn(N)
    queries = _nodes(5, seed=1)
    query_edges = {
        "spatial": (torch.tensor([[0, 1, 2, 3, 4, 5, 6], [0, 0, 1, 2, 3, 4, 4]]), torch.rand(7, 1)),
        "spectral": (torch.tensor([[7, 8, 9, 11], [0, 2, 4, 4]]), torch.rand(4, 2)),  # query 1, 3: none
    }
    with torch.no_grad():
        reference, _ = model.reference_states(nodes, edges, labels)
        sources = model.query_sources(reference)
        for kept in (query_edges, {"spatial": query_edges["spatial"]}):
            expected = model.predict_queries(queries, kept, reference)
            tables = neighbour_tables(kept, 5)
            actual = model.predict_neighbours(queries, tables, sources)
            torch.testing.assert_close(actual.mean, expected.mean, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(actual.variance, expected.variance, rtol=1e-5, atol=1e-6)
    assert tables["spatial"][0].tolist()[0] == [0, 1] and tables["spatial"][0].tolist()[1] == [2, -1]


def test_batched_members_equal_separate_single_models():
    batched, nodes, edges = _model(members=3), _nodes(), _ring()
    labels = torch.randn(N)
    with torch.no_grad():
        out = batched(nodes, edges, labels)
        for m in range(3):
            single = _model(members=1)
            state = {
                name: value if name.endswith("frequencies") else value[m : m + 1]
                for name, value in batched.state_dict().items()
            }
            single.load_state_dict(state)
            alone = single(nodes, edges, labels)
            torch.testing.assert_close(alone.mean[0], out.mean[m], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(alone.variance[0], out.variance[m], rtol=1e-5, atol=1e-6)
    assert out.variance.min() > 0
    assert not torch.allclose(out.mean[0], out.mean[1])  # members differ


def test_no_graph_config_is_an_mlp_over_the_streams():
    model, nodes = _model(relations={}), _nodes()
    with torch.no_grad():
        with_edges = model(nodes, _ring(), torch.randn(N))
        without = model(nodes, {}, torch.randn(N))
    torch.testing.assert_close(with_edges.mean, without.mean)


def test_every_parameter_has_the_member_dimension():
    model = _model(members=4, fusion="concat")
    assert all(p.shape[0] == 4 for p in model.parameters())
    assert SpTGNNConfig.from_dict(model.config.to_dict()) == model.config
    with pytest.raises(InputError, match="Unknown SpTGNNConfig settings: experts_count"):
        SpTGNNConfig.from_dict({"members": 2, "experts_count": 3})


def test_head_gives_the_mean_and_the_softplus_variance_of_its_two_outputs():
    model = _model()
    state = torch.randn(3, 7, 16)
    with torch.no_grad():
        output = model._head(state, torch.zeros(3))
        raw = model.head(state)  # (M, N, 2): mean, pre-softplus variance
    torch.testing.assert_close(output.mean, raw[..., 0])
    torch.testing.assert_close(output.variance, torch.nn.functional.softplus(raw[..., 1]) + MIN_VARIANCE)
