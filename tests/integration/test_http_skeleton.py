"""The HTTP skeleton through litestar's test client, on both stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from subledger.http.app import create_app
from subledger.settings import Settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_health_and_ready(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_openapi_schema_is_served(client: TestClient) -> None:  # type: ignore[type-arg]
    schema = client.get("/schema/openapi.json")
    assert schema.status_code == 200
    assert "/health" in schema.json()["paths"]


def test_unknown_routes_answer_json_errors(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.get("/nope")
    assert response.status_code == 404
    assert set(response.json()) == {"code", "message"}
    response = client.delete("/health")
    assert response.status_code == 405
    assert set(response.json()) == {"code", "message"}
    assert "GET" in response.headers["allow"].split(", ")  # RFC 9110: 405 names what is allowed
