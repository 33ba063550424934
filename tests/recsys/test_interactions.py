"""Unit tests of the data model: IdMap, Interactions, check_disjoint."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data import IdMap, Interactions, check_disjoint
from recsys.data.loaders import read_log
from recsys.errors import DataError, SplitError, UnknownIdError


# ------------------------------------------------------------------------------------------ IdMap
@pytest.mark.parametrize(
    "ids",
    [[10, 3, 7], ["u1", "u10", "u2"], np.array([5, 1, 9], dtype=np.int64), np.array(["b", "a"])],
)
def test_idmap_round_trip(ids):
    m = IdMap(ids, "user")
    raws = list(np.asarray(ids).tolist())
    idx = m.indices(raws)
    assert idx.dtype == np.int64
    assert np.array_equal(idx, np.arange(len(raws)))
    assert [m.raw(i) for i in idx] == raws
    assert list(m.raw(idx)) == raws
    for i, r in enumerate(raws):
        assert m.index(r) == i and r in m


def test_idmap_numpy_and_python_scalars_are_one_key():
    m = IdMap(np.array([4, 8]), "item")
    assert m.index(np.int64(8)) == 1 and m.index(8) == 1 and m.get(np.int32(4)) == 0


def test_idmap_unicode_array_is_not_truncated():
    m = IdMap(np.array(["a", "bb"]))
    assert m.ids.dtype == object
    m.ids[0] = "a-much-longer-id"  # a fixed-width '<U2' array would have cut this
    assert m.ids[0] == "a-much-longer-id"


def test_idmap_missing_modes():
    m = IdMap(["a", "b", "c"], "item")
    with pytest.raises(UnknownIdError, match="unknown item ids"):
        m.indices(["a", "zz"], missing="raise")
    assert m.indices(["a", "zz", "c"], missing="drop").tolist() == [0, 2]
    assert m.indices(["a", "zz", "c"], missing="mark").tolist() == [0, -1, 2]
    assert m.get("zz") == -1 and m.get("zz", default=99) == 99
    assert "zz" not in m


def test_unknown_id_error_is_keyerror_with_readable_message():
    m = IdMap([1, 2], "user")
    with pytest.raises(KeyError) as info:
        m.index(3)
    assert isinstance(info.value, UnknownIdError)
    assert str(info.value) == "unknown user id 3"


def test_idmap_rejects_duplicates_and_2d():
    with pytest.raises(DataError, match="duplicates"):
        IdMap([1, 2, 1])
    with pytest.raises(DataError, match="one-dimensional"):
        IdMap(np.zeros((2, 2)))


def test_idmap_equality():
    assert IdMap([1, 2]) == IdMap(np.array([1, 2]))
    assert IdMap([1, 2]) != IdMap([2, 1])
    assert IdMap([1, 2]) != IdMap([1, 2, 3])


@settings(max_examples=50, deadline=None)
@given(
    st.one_of(
        st.lists(st.integers(-(2**40), 2**40), unique=True, max_size=30),
        # NUL excluded: numpy's fixed-width strings drop trailing NULs (known IdMap limitation)
        st.lists(st.text(st.characters(blacklist_characters="\x00"), min_size=1, max_size=5), unique=True, max_size=30),
    )
)
def test_idmap_round_trip_property(raws):
    m = IdMap(raws, "item")
    assert m.indices(raws).tolist() == list(range(len(raws)))
    assert [m.raw(i) for i in range(len(raws))] == raws


# ----------------------------------------------------------------------------------- Interactions
def test_from_arrays_sorted_maps_and_int_ids_map_to_themselves():
    x = Interactions.from_arrays([0, 2, 1], [1, 0, 2])
    assert x.user_ids.tolist() == [0, 1, 2] and x.item_ids.tolist() == [0, 1, 2]
    assert x.matrix.dtype == np.float32
    assert x.matrix.toarray().tolist() == [[0, 1, 0], [0, 0, 1], [1, 0, 0]]


@pytest.mark.parametrize(
    "aggregate, expected",
    [("sum", 6.0), ("max", 3.0), ("last", 1.0), ("count", 3.0)],
)
def test_from_arrays_aggregates_duplicates_earliest_timestamp(aggregate, expected):
    # rows of pair (u, i): weights 2, 3, 1 at times 20, 30, 40 -- given out of time order
    x = Interactions.from_arrays(
        ["u", "u", "u", "v"], ["i", "i", "i", "i"], [3.0, 1.0, 2.0, 5.0], [30, 40, 20, 7],
        aggregate=aggregate,
    )
    assert x.nnz == 2
    assert x.matrix[x.user_map.index("u"), 0] == pytest.approx(expected)
    assert x.timestamps.tolist() == [20.0, 7.0]  # earliest of the pair's rows


def test_from_arrays_last_without_timestamps_uses_file_order():
    x = Interactions.from_arrays([1, 1], [1, 1], [5.0, 2.0], aggregate="last")
    assert x.matrix.data.tolist() == [2.0]


@pytest.mark.parametrize("with_time", [True, False])
def test_aggregation_equals_a_row_by_row_reference(with_time):
    """Random logs with many repeated pairs and tied times: every aggregate, the earliest time,
    canonical CSR, and subsets, against a plain dictionary built row by row (ties in time keep
    file order, so ``last`` is the latest time's last row in the file)."""
    rng = np.random.default_rng(4)
    for _ in range(40):
        n = int(rng.integers(0, 200))
        u, i = rng.integers(0, 6, n), rng.integers(0, 9, n)
        w = rng.integers(0, 5, n).astype(float)
        t = rng.integers(0, 3, n).astype(float) if with_time else None
        for aggregate in ("sum", "max", "last", "count"):
            x = Interactions.from_arrays(u, i, w, t, user_ids=np.arange(6), item_ids=np.arange(9),
                                         aggregate=aggregate)
            ref: dict[tuple[int, int], list[tuple[float, int, float]]] = {}
            for r in range(n):
                ref.setdefault((int(u[r]), int(i[r])), []).append((0.0 if t is None else t[r], r, w[r]))
            want = {}
            for pair, rows in ref.items():
                ws = [v for _, _, v in rows]
                value = {"sum": sum(ws), "max": max(ws), "count": len(ws), "last": max(rows)[2]}[aggregate]
                want[pair] = (value, min(rows)[0])
            assert x.matrix.has_canonical_format and x.matrix.indices.dtype == np.int32
            rows_, cols, vals, ts = x.to_coo()
            got = {(int(a), int(b)): (float(v), 0.0 if ts is None else float(ts[k]))
                   for k, (a, b, v) in enumerate(zip(rows_, cols, vals))}
            assert got == want
            keep = rng.random(x.nnz) < 0.5
            sub = x.subset(keep)
            assert sub.matrix.has_canonical_format
            assert sub.pair_keys().tolist() == x.pair_keys()[keep].tolist()
            assert sub.matrix.data.tolist() == x.matrix.data[keep].tolist()
            if ts is not None:
                assert sub.timestamps.tolist() == x.timestamps[keep].tolist()


def test_timestamps_align_to_csr_order():
    users = np.array([2, 0, 1, 0])
    items = np.array([0, 2, 1, 0])
    ts = np.array([1.0, 2.0, 3.0, 4.0])
    x = Interactions.from_arrays(users, items, None, ts)
    rows, cols, _, t = x.to_coo()
    got = {(int(r), int(c)): float(v) for r, c, v in zip(rows, cols, t)}
    assert got == {(2, 0): 1.0, (0, 2): 2.0, (1, 1): 3.0, (0, 0): 4.0}


@pytest.mark.parametrize(
    "weights, match",
    [([1.0, np.nan], "NaN"), ([1.0, np.inf], "NaN or infinite"), ([1.0, -1.0], "non-negative")],
)
def test_from_arrays_rejects_bad_weights(weights, match):
    with pytest.raises(DataError, match=match):
        Interactions.from_arrays([0, 1], [0, 1], weights)


def test_constructor_validation():
    m = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))
    with pytest.raises(DataError, match="does not match"):
        Interactions(m, [0, 1, 2], [0, 1])
    with pytest.raises(DataError, match="NaN"):
        Interactions(sp.csr_matrix(np.array([[np.nan]])), [0], [0])
    with pytest.raises(DataError, match="non-negative"):
        Interactions(sp.csr_matrix(np.array([[-1.0]])), [0], [0])
    with pytest.raises(DataError, match="timestamps have shape"):
        Interactions(m, [0, 1], [0, 1], timestamps=np.zeros(3))


def test_from_arrays_length_mismatch_and_bad_aggregate():
    with pytest.raises(DataError, match="differ in length"):
        Interactions.from_arrays([0, 1], [0])
    with pytest.raises(DataError, match="differ in length"):
        Interactions.from_arrays([0, 1], [0, 1], [1.0])
    with pytest.raises(DataError, match="differ in length"):
        Interactions.from_arrays([0, 1], [0, 1], None, [1.0])
    with pytest.raises(DataError, match="aggregate"):
        Interactions.from_arrays([0], [0], aggregate="mean")


def test_from_arrays_with_given_maps_unknown_ids():
    base = Interactions.from_arrays(["a", "b"], ["x", "y"])
    with pytest.raises(UnknownIdError, match="unknown item id .*'z'"):
        Interactions.from_arrays(["a"], ["z"], user_ids=base.user_map, item_ids=base.item_map)
    y = Interactions.from_arrays(
        ["a", "b"], ["z", "y"], user_ids=base.user_map, item_ids=base.item_map, unknown="drop"
    )
    assert y.nnz == 1 and y.same_maps(base)


def test_subset_keeps_maps_and_timestamps():
    x = Interactions.from_arrays([0, 0, 1, 2], [0, 1, 1, 2], [1, 2, 3, 4], [10, 20, 30, 40])
    mask = np.array([True, False, True, False])
    s = x.subset(mask)
    assert s.user_map is x.user_map and s.item_map is x.item_map
    assert s.shape == x.shape and s.nnz == 2
    assert s.matrix.data.tolist() == [1.0, 3.0] and s.timestamps.tolist() == [10.0, 30.0]
    with pytest.raises(DataError, match="mask has shape"):
        x.subset(np.ones(3, dtype=bool))


def test_counts_and_user_items():
    x = Interactions.from_arrays([0, 0, 2], [1, 0, 1], user_ids=[0, 1, 2])
    assert x.user_counts().tolist() == [2, 0, 1]
    assert x.item_counts().tolist() == [1, 2]
    assert x.active_users().tolist() == [0, 2]
    assert x.user_items(0).tolist() == [0, 1]


def test_to_frame_round_trips_through_read_log(tmp_path):
    x = Interactions.from_arrays(
        ["u2", "u1", "u1", "u3"], ["i9", "i1", "i9", "i1"], [1.5, 2.0, 1.0, 4.0], [5.0, 6.0, 7.0, 8.0]
    )
    for name, write in (("log.csv", "write_csv"), ("log.parquet", "write_parquet")):
        path = tmp_path / name
        getattr(x.to_frame(), write)(path)
        y = read_log(path, weight="weight", timestamp="timestamp")
        assert y.user_map == x.user_map and y.item_map == x.item_map
        assert (y.matrix != x.matrix).nnz == 0
        assert np.array_equal(y.timestamps, x.timestamps)


def test_check_disjoint():
    a = Interactions.from_arrays([0, 1], [0, 1])
    b = a.subset(np.array([False, True]))
    c = a.subset(np.array([True, False]))
    check_disjoint(c, b)  # disjoint, same maps: fine
    with pytest.raises(SplitError, match="overlap in 1"):
        check_disjoint(a, b)
    other = Interactions.from_arrays([0, 1, 2], [0, 1, 1])
    with pytest.raises(SplitError, match="different id maps"):
        check_disjoint(a, other)
