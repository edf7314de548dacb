"""Front doors: the provider APIs the relay also answers in, so applications written against
an official SDK adopt the relay by changing its base URL (``relay.config.doors``).

- ``/ark/api/v3``: the Volcengine Ark video-task API (``relay.doors.ark_routes``);
- ``/openai/v1``: the OpenAI video API, as new-api gateways serve it
  (``relay.doors.openai_routes``).
"""
