"""How the OpenAPI document writes pydantic's JSON schemas: in the plainest form that client
generators read correctly.

Pydantic's own output is valid JSON Schema, but three of its habits trip popular generators:

- ``"default": null`` on every optional field. ``openapi-typescript`` (default options)
  then makes the field required, since "it always has a value". An optional field that
  may be left out simply has no default here.
- ``"const": true`` for a ``Literal[True]``. Generated Python clients (openapi-generator)
  then refuse the very answer the relay gives, e.g. ``{"deleted": true}`` of
  ``DELETE /v1/subscriptions/{id}``. Here it is a plain boolean; the description says
  which value it takes.
- A default on a request body's field, which ``openapi-typescript`` takes for "always
  present" (``RequestBodySchema``).
- Names of private models (``_ImageObject``) become class names as they are, with the
  underscore. Here the underscore is dropped.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema


class ClientFriendlySchema(GenerateJsonSchema):
    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if "default" in schema and schema["default"] is None:
            # Left out means "not given": a null default says nothing more, and misleads.
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)

    def literal_schema(self, schema: core_schema.LiteralSchema) -> JsonSchemaValue:
        expected: list[Any] = list(schema["expected"])
        if expected and all(isinstance(value, bool) for value in expected):
            return {"type": "boolean"}
        return super().literal_schema(schema)

    def normalize_name(self, name: str) -> str:
        return super().normalize_name(name).lstrip("_") or name


class RequestBodySchema(ClientFriendlySchema):
    """A request body's schema: no ``default`` at all, the value said in the description.
    ``openapi-typescript`` (default options) types a field with a default as always
    present, which holds for an answer but not for a body, where the caller leaves it out
    and the relay applies it: ``{"url": …}`` would not type-check for lack of ``verify``."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        if "default" not in schema or schema["default"] is None:
            return inner
        # Said once the field's own description is in place (it is set after this).
        return {**inner, _DEFAULT: schema["default"]}

    def model_fields_schema(self, schema: core_schema.ModelFieldsSchema) -> JsonSchemaValue:
        json_schema = super().model_fields_schema(schema)
        for prop in json_schema.get("properties", {}).values():
            if _DEFAULT in prop:
                said = f"Default: {json.dumps(prop.pop(_DEFAULT))}."
                described = prop.get("description")
                prop["description"] = f"{described} {said}" if described else said
        return json_schema


_DEFAULT = "x-relay-default"
