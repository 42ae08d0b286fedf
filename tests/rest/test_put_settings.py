"""``PUT /<index>/_settings`` through both front ends: dynamic settings change, persist and take effect;
static, private and unknown settings and bad values are refused with OpenSearch's errors and change nothing
(``MetadataUpdateSettingsService``, ``RestUpdateSettingsAction``)."""

from __future__ import annotations

from typing import Any

import pytest
from opensearchpy.exceptions import TransportError


@pytest.fixture
def idx(client, index_name) -> str:
    client.indices.create(index=index_name, body={"settings": {"index.knn": True}})
    return index_name


def flat(client, index: str) -> dict[str, Any]:
    s = client.indices.get_settings(index=index, flat_settings=True)[index]["settings"]
    return {k: v for k, v in s.items() if k not in ("index.uuid", "index.creation_date")}


def fail(call) -> dict[str, Any]:
    with pytest.raises(TransportError) as ei:
        call()
    return {"status": ei.value.status_code, **ei.value.info}


def test_put_settings_flat_nested_and_wrapped(client, idx):
    before = flat(client, idx)
    assert client.indices.put_settings(index=idx, body={"index.refresh_interval": "5s"}) == {"acknowledged": True}
    assert client.indices.put_settings(index=idx, body={"index": {"number_of_replicas": 0,
                                                                  "translog": {"durability": "async"}}}) == {
        "acknowledged": True}
    assert client.indices.put_settings(index=idx, body={"settings": {"max_result_window": 20,
                                                                     "index.knn.algo_param.ef_search": 50}}) == {
        "acknowledged": True}
    assert flat(client, idx) == {**before, "index.refresh_interval": "5s", "index.number_of_replicas": "0",
                                 "index.translog.durability": "async", "index.max_result_window": "20",
                                 "index.knn.algo_param.ef_search": "50"}
    # null resets to the default
    client.indices.put_settings(index=idx, body={"index.refresh_interval": None, "index.number_of_replicas": None})
    assert "index.refresh_interval" not in flat(client, idx)
    assert flat(client, idx)["index.number_of_replicas"] == "1"


def test_new_max_result_window_applies_to_searches(client, idx):
    client.indices.put_settings(index=idx, body={"index.max_result_window": 5})
    err = fail(lambda: client.search(index=idx, body={"size": 6}))
    assert err["error"]["root_cause"][0]["reason"].startswith(
        "Result window is too large, from + size must be less than or equal to: [5] but was [6].")


def test_static_private_unknown_and_bad_values_are_refused(client, idx):
    uuid = client.indices.get_settings(index=idx)[idx]["settings"]["index"]["uuid"]
    before = flat(client, idx)
    cases = [
        ({"index.knn": False}, "illegal_argument_exception",
         f"Can't update non dynamic settings [[index.knn]] for open indices [[{idx}/{uuid}]]"),
        ({"index": {"number_of_shards": 2, "refresh_interval": "2s"}}, "illegal_argument_exception",
         f"Can't update non dynamic settings [[index.number_of_shards]] for open indices [[{idx}/{uuid}]]"),
        ({"index.foo": 1}, "illegal_argument_exception",
         "unknown setting [index.foo] please check that any required plugins are installed, or check the "
         "breaking changes documentation for removed settings"),
        ({"index.uuid": "x"}, "settings_exception",
         "can not update private setting [index.uuid]; this setting is managed by OpenSearch"),
        ({"number_of_replicas": "abc"}, "illegal_argument_exception",
         "Failed to parse value [abc] for setting [index.number_of_replicas]"),
        ({"index.refresh_interval": "soon"}, "illegal_argument_exception",
         "failed to parse setting [index.refresh_interval] with value [soon] as a time value: unit is missing or "
         "unrecognized"),
        ({"index.translog.sync_interval": "10ms"}, "illegal_argument_exception",
         "failed to parse value [10ms] for setting [index.translog.sync_interval], must be >= [100ms]"),
        ({}, "action_request_validation_exception", "Validation Failed: 1: no settings to update;"),
    ]
    for body, etype, reason in cases:
        err = fail(lambda body=body: client.indices.put_settings(index=idx, body=body))
        assert err["status"] == 400, body
        assert err["error"]["root_cause"] == [{"type": etype, "reason": reason}], body
    assert flat(client, idx) == before


def test_settings_survive_restart_and_drive_the_writer(tmp_path):
    import segstore

    c = segstore.connect(tmp_path)
    c.indices.create(index="i", body={"settings": {"index.translog.durability": "request"}})
    c.indices.put_settings(index="i", body={"index.translog.durability": "async", "index.refresh_interval": "-1",
                                            "index.merge.policy.segments_per_tier": 4})
    w = c.transport.router.node.writer("i")
    assert w.translog._durability == "async" and w.translog._syncer is not None
    assert w.merge_policy.segments_per_tier == 4.0
    c.index(index="i", id="1", body={"x": 1})
    import time
    time.sleep(1.5)  # the node's 1 s default refresh would have run; refresh_interval -1 turns it off
    assert c.count(index="i")["count"] == 0
    c.indices.put_settings(index="i", body={"index.translog.durability": "request"})
    assert w.translog._durability == "request"
    c.close()
    c = segstore.connect(tmp_path)
    s = c.indices.get_settings(index="i", flat_settings=True)["i"]["settings"]
    assert s["index.translog.durability"] == "request" and s["index.refresh_interval"] == "-1"
    assert s["index.merge.policy.segments_per_tier"] == "4"
    c.close()
