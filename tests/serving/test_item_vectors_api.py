"""PUT /v1/items/{id} with named vectors: stored, returned, and refused with the field named."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fusionrec.data.store import open_store


def test_put_item_vectors_round_trip_through_the_store(client: TestClient, store_url: str) -> None:
    body = {"title": "Framed print", "vectors": {"image_embedding": [0.5, -1.25, 2.0]}}
    answer = client.put("/v1/items/new-print", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["vectors"] == {"image_embedding": [0.5, -1.25, 2.0]}
    with open_store(store_url) as store:
        row = store.items_arrow().to_pandas().set_index("item_id").loc["new-print"]
        assert dict(row["vectors"])["image_embedding"].tolist() == [0.5, -1.25, 2.0]
        assert store.item_vector_dims() == {"image_embedding": 3}
    # A later PUT without vectors keeps them; one with other values replaces them.
    assert client.put("/v1/items/new-print", json={"price": 12.0}).json()["vectors"] == body["vectors"]
    again = client.put("/v1/items/new-print", json={"vectors": {"image_embedding": [1.0, 0.0, 0.0]}})
    assert again.json()["vectors"] == {"image_embedding": [1.0, 0.0, 0.0]}


def test_put_item_vectors_refused_with_the_field_named(client: TestClient) -> None:
    assert client.put("/v1/items/a", json={"vectors": {"image_embedding": [1.0, 2.0]}}).status_code == 200
    cases = {
        "empty": {"image_embedding": []},
        "text": {"image_embedding": ["x", 1.0]},
        "not a mapping": [1.0, 2.0],
        "other length": {"image_embedding": [1.0, 2.0, 3.0]},
        "empty name": {"": [1.0]},
    }
    for case, vectors in cases.items():
        answer = client.put("/v1/items/b", json={"vectors": vectors})
        assert answer.status_code == 422, case
        locations = [detail["loc"] for detail in answer.json()["detail"]]
        assert any(loc[:2] == ["body", "vectors"] for loc in locations), (case, locations)
    wrong = client.put("/v1/items/b", json={"vectors": {"image_embedding": [1.0, 2.0, 3.0]}}).json()
    assert wrong["detail"][0]["loc"] == ["body", "vectors", "image_embedding"]
    assert "expected 2" in wrong["detail"][0]["msg"]
    # NaN is not JSON, but Python's parser reads it: the body is refused all the same.
    raw = '{"vectors": {"image_embedding": [NaN, 1.0]}}'
    answer = client.put("/v1/items/b", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][:3] == ["body", "vectors", "image_embedding"]
