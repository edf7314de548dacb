"""The ``front_doors`` settings: the provider APIs the relay also answers in (``relay.doors``),
so an application written against the official Ark or OpenAI SDK only changes its base URL.

    front_doors:
      ark:    {enabled: true, provider: sandbox}          # /ark/api/v3
      openai: {enabled: true, provider: sandbox, model: seedance-2.0}   # /openai/v1

Each door submits to one configured provider or route (``provider``); a door whose target is
not configured is not served (the relay logs it), so the default works with the sandbox on
and stays out of the way without it.
"""

from __future__ import annotations

from pydantic import Field

from relay.config.sections import ConfigModel


class ArkDoorSettings(ConfigModel):
    enabled: bool = True
    provider: str = Field(default="sandbox", min_length=1, max_length=64)
    """The provider or route the door's tasks are submitted to."""


class OpenAIDoorSettings(ConfigModel):
    enabled: bool = True
    provider: str = Field(default="sandbox", min_length=1, max_length=64)
    """The provider or route the door's videos are submitted to."""
    model: str = Field(default="seedance-2.0", min_length=1, max_length=128)
    """The model of a create that names none (the OpenAI SDK sends none unless asked)."""


class FrontDoorSettings(ConfigModel):
    ark: ArkDoorSettings = Field(default_factory=ArkDoorSettings)
    openai: OpenAIDoorSettings = Field(default_factory=OpenAIDoorSettings)
