"""The storage contract for deliveries a stopping instance hands back
(``DeliveryStore.release_deliveries``): claimed ones it will not send are due again at once,
for anyone, but only while still its own. Runs once per backend, with no backend branches."""

from __future__ import annotations

from relay.models import Account
from relay.store.interface import Store
from tests.store.factories import at, pending


async def test_deliveries_handed_back_are_due_again_at_once_for_another_instance(
    store: Store, alice: Account
) -> None:
    events = [(await pending(store, alice, at(seconds=s))).event.id for s in range(3)]
    claimed = await store.claim_due_deliveries(at(seconds=10), 10, 300, "stopping")
    assert [d.event_id for d in claimed] == events
    # Leased: nobody else may take them until the lease ends.
    assert await store.claim_due_deliveries(at(seconds=11), 10, 300, "other") == []
    # "other" cannot hand back what is not its own; "stopping" hands back two of three.
    await store.release_deliveries([d.pk for d in claimed], "other")
    assert await store.claim_due_deliveries(at(seconds=12), 10, 300, "other") == []
    await store.release_deliveries([d.pk for d in claimed[:2]], "stopping")
    taken = await store.claim_due_deliveries(at(seconds=13), 10, 300, "other")
    assert [d.event_id for d in taken] == events[:2]
