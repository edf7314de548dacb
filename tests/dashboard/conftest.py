"""The dashboard tests' shared fixture: ``dash``, a signed-out browser-like client on a real
app (defined with the route tests, where it began)."""

from tests.dashboard.test_routes import dash as dash
