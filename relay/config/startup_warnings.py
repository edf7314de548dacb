"""What valid settings may still get wrong, said as warnings: ``relay serve`` logs each at
start and ``relay check-config`` prints the same list, so a configuration can be checked
before it runs and nothing is said by one that the other leaves out."""

from __future__ import annotations

from relay.adapters.registry import build_dialect
from relay.config.settings import Settings


def startup_warnings(settings: Settings, own_address: str) -> list[str]:
    """Each warning on one line; ``own_address`` is where this relay serves, what providers
    and receivers are told when ``server.public_url`` is not set."""
    return [*_unreachable_pushes(settings, own_address), *_outputs(settings)]


def _outputs(settings: Settings) -> list[str]:
    store = settings.outputs.store
    if (
        store is not None
        and store.startswith("file:")
        and settings.database_url.startswith("postgres")
    ):
        return [
            "outputs.store is a local directory and the database is shared: every "
            "instance must see the same directory (a shared volume), or a link served by "
            "an instance without the file answers 404; use an s3:// bucket otherwise"
        ]
    return []


def _unreachable_pushes(settings: Settings, own_address: str) -> list[str]:
    if settings.server.public_url is not None:
        return []
    found = []
    if settings.outputs.store is not None:
        found.append(
            "outputs.store is set, but server.public_url is not: the stable video links "
            f"handed to receivers name {own_address}, which receivers elsewhere likely "
            "cannot reach"
        )
    for name, p in settings.providers.items():
        # Any dialect that is handed the relay's URL (seedance2.ink's webhookUrl, Ark's
        # callback_url where pushes is on); a sandbox provider is this relay itself.
        dialect = build_dialect(p.dialect, key=f"providers.{name}.dialect", pushes=p.pushes)
        if not p.sandbox and dialect.pushes:
            found.append(
                f"provider {name} pushes results to this relay, but server.public_url is "
                f"not set: it is told {own_address}, which it likely cannot reach; results "
                "then arrive only by the slower poll (or set providers."
                f"{name}.pushes: false)"
            )
    return found
