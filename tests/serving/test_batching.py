"""Request batching (serving.batching): waiting requests computed together, each gets its own answer."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from serving.batching import Batcher


def _slow_square(calls: list):
    def compute(group, keys):
        calls.append((group, list(keys)))
        time.sleep(0.01)  # long enough for the other threads to queue up
        return [k * k for k in keys]
    return compute


def _run_threads(batcher: Batcher, keys, groups=None) -> dict:
    out, errors = {}, {}

    def one(i, k, g):
        try:
            out[i] = batcher.submit(k, group=g)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            errors[i] = exc

    groups = groups or [None] * len(keys)
    threads = [threading.Thread(target=one, args=(i, k, g)) for i, (k, g) in enumerate(zip(keys, groups))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return {"out": out, "errors": errors}


def test_one_request_is_computed_at_once_alone():
    calls = []
    b = Batcher(_slow_square(calls))
    t0 = time.perf_counter()
    assert b.submit(3) == 9
    assert calls == [(None, [3])] and b.batches == 1 and b.requests == 1
    assert time.perf_counter() - t0 < 0.5  # no waiting for company that is not there


def test_concurrent_requests_share_calls_and_each_gets_its_own_result():
    calls = []
    b = Batcher(_slow_square(calls), max_batch=8)
    keys = list(range(24))
    res = _run_threads(b, keys)
    assert not res["errors"]
    assert res["out"] == {i: k * k for i, k in enumerate(keys)}
    assert b.requests == 24 and b.batches < 24  # some calls computed several requests
    assert max(len(k) for _, k in calls) <= 8
    assert sorted(k for _, ks in calls for k in ks) == keys  # every key once


def test_groups_are_never_mixed_in_one_call():
    calls = []
    b = Batcher(_slow_square(calls))
    keys = list(range(20))
    res = _run_threads(b, keys, groups=[k % 2 for k in keys])
    assert res["out"] == {i: k * k for i, k in enumerate(keys)}
    for group, ks in calls:
        assert all(k % 2 == group for k in ks)


def test_a_failing_key_fails_only_its_own_request():
    def compute(group, keys):
        time.sleep(0.01)
        if 7 in keys:
            raise ValueError("bad key 7")
        return [-k for k in keys]

    b = Batcher(compute)
    keys = list(range(12))
    res = _run_threads(b, keys)
    assert set(res["errors"]) == {7} and "bad key 7" in str(res["errors"][7])
    assert res["out"] == {i: -k for i, k in enumerate(keys) if k != 7}


def test_linger_waits_for_company_only_under_concurrent_load():
    """Idle: no linger. After a batch with company, a leader waits (bounded) for others."""
    calls = []
    b = Batcher(_slow_square(calls), linger=0.2)
    t0 = time.perf_counter()
    b.submit(1)
    b.submit(2)
    assert time.perf_counter() - t0 < 0.15  # sequential requests: never lingered
    _run_threads(b, list(range(6)))  # concurrent: batches with company
    assert b._loaded or b._recent  # the load was seen
    with pytest.raises(ValueError):
        Batcher(_slow_square([]), linger=2.0)
    with pytest.raises(ValueError):
        Batcher(_slow_square([]), max_batch=0)


@pytest.mark.parametrize("name", ["als", "hybrid"])
def test_service_lists_are_the_same_batched_or_alone(hybrid_bundle, fitted_small, planted, name):
    """Known users' lists through the batcher, from many threads at once, equal one-at-a-time lists."""
    from serving.bundle import load_bundle, save_bundle
    from serving.service import RecommendationService

    if name == "hybrid":
        bundle = load_bundle(hybrid_bundle)
    else:
        import tempfile
        from pathlib import Path

        path = save_bundle(fitted_small("als"), Path(tempfile.mkdtemp()) / "als", item_features=planted[3])
        bundle = load_bundle(path)
    service = RecommendationService(bundle)
    users = service.interactions.user_ids[:40].tolist()
    alone = {u: service.recommend_user(u, n=7) for u in users}
    assert service.batcher.batches == service.batcher.requests == len(users)  # one by one: batches of 1
    # a slower model call, so that the threads really queue up behind each other
    compute = service.batcher.compute

    def slow(group, keys):
        time.sleep(0.005)
        return compute(group, keys)

    service.batcher.compute = slow
    before = service.batcher.batches
    got: dict = {}
    threads = [threading.Thread(target=lambda u=u: got.__setitem__(u, service.recommend_user(u, n=7)))
               for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert service.batcher.batches - before < len(users)  # some lists were computed together
    for u in users:
        a = [(i["item_id"], round(i["score"], 4)) for i in alone[u]["items"]]
        b = [(i["item_id"], round(i["score"], 4)) for i in got[u]["items"]]
        assert a == b, u
        assert got[u]["known_user"] is True
    # an unknown user is answered outside the batcher
    assert service.recommend_user("no-such-user", n=3)["known_user"] is False
    np.testing.assert_equal(len(service.recommend_user("no-such-user", n=3)["items"]), 3)
