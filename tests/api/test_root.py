"""``GET /``: a person who opens the relay's address lands on the dashboard."""

from __future__ import annotations

from tests.api.conftest import InProcessFactory


async def test_the_root_leads_to_the_dashboard(start_relay: InProcessFactory) -> None:
    relay = await start_relay(listen=False)
    async with relay.client() as client:
        root = await client.get("/")
        assert root.status_code == 307
        assert root.headers["location"] == "/dashboard/"
        landed = await client.get("/", follow_redirects=True)
        assert landed.status_code == 200
        assert landed.headers["content-type"].startswith("text/html")
        # Signed out, the dashboard asks for a key first.
        assert [r.headers["location"] for r in landed.history] == [
            "/dashboard/",
            "/dashboard/login",
        ]
        # Only GET and HEAD: the API's own routes are untouched.
        assert (await client.post("/")).status_code == 405


async def test_without_a_dashboard_the_root_is_not_found(start_relay: InProcessFactory) -> None:
    relay = await start_relay(listen=False, dashboard={"enabled": False})
    async with relay.client() as client:
        root = await client.get("/")
        assert root.status_code == 404
        assert root.headers["content-type"].startswith("application/json")
