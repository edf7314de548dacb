"""The sandbox: a faithful local emulation of the five providers' APIs (three dialects),
served by the relay itself under ``/sandbox`` so that a newcomer, the tests and the
benchmarks need no provider account. Every flavor lives at ``/sandbox/<flavor>`` plus the
real provider's own paths (the URL map is in :mod:`relay.sandbox.app`).

Where things are:

- :mod:`~relay.sandbox.timeline`, :mod:`~relay.sandbox.ids`, :mod:`~relay.sandbox.simulation`:
  the pure core. One task timeline for every flavor (queued, running, outcome; prompt
  keywords ``[fail]``, ``[expire]``, ``[slow]``), stateless ids that carry the whole task so
  a restarted sandbox still answers, the per-instance task book, signed result URLs.
- Bodies, pure: :mod:`~relay.sandbox.ark_shapes` (Ark), :mod:`~relay.sandbox.gateway_shapes`
  and :mod:`~relay.sandbox.unified_create` (new-api gateways),
  :mod:`~relay.sandbox.seedance2ink_shapes`.
- Handlers: :mod:`~relay.sandbox.ark` (ark, apiyi, cubicspaces' mirror),
  :mod:`~relay.sandbox.unified` (naci, vastnum, cubicspaces, newapi),
  :mod:`~relay.sandbox.seedance2ink` with its webhook :mod:`~relay.sandbox.push`,
  :mod:`~relay.sandbox.moderation` (cubicspaces).
- Result files: :mod:`~relay.sandbox.media` (their bytes, pure: ``expected_sha256(task_id,
  size)`` tells a test what a download must hold) and :mod:`~relay.sandbox.files` (served
  streamed, with range requests, expiring links, gone with a deleted task).
- Test-double machinery: :mod:`~relay.sandbox.faults`, :mod:`~relay.sandbox.file_faults` and
  :mod:`~relay.sandbox.control` (``/_control``: switchable API and file faults, the request
  log, the file log, the push log).

Keys: any non-empty ``Bearer`` key is accepted except one starting with ``invalid``, which
gets the provider's 401 like a missing key does.
"""
