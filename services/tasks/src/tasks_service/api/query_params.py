"""Query strings validated by one Pydantic model, documented from the same model.

Why not FastAPI's `Annotated[Model, Query()]`: it re-inspects every field's annotation on every
request, which cost about 0.3 ms of a 0.75 ms list request. Here the model validates the query
in one call, its errors become the usual 422 (`loc` starting with `query`), and
`openapi_parameters` documents the same fields, so docs, fuzzing and validation cannot drift.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams

REF_TEMPLATE = "#/components/schemas/{model}"
M = TypeVar("M", bound=BaseModel)


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return typing.get_origin(annotation) is list


@cache
def list_fields(model: type[BaseModel]) -> frozenset[str]:
    """Fields that may repeat in the query string (`?status=todo&status=done`)."""
    fields = model.model_fields.items()
    return frozenset(name for name, field in fields if _is_list(field.annotation))


def parse_query(model: type[M], query: QueryParams) -> M:
    """`model` from a query string; a scalar given twice takes its last value, as FastAPI does."""
    repeated = list_fields(model)
    data: dict[str, Any] = {}
    for name in query:
        data[name] = query.getlist(name) if name in repeated else query[name]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


def openapi_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The model's fields as OpenAPI query parameters (enums refer to the shared components)."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    required = set(schema.get("required", []))
    parameters = []
    for name, field_schema in schema["properties"].items():
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": field_schema,
        }
        if "description" in field_schema:
            parameter["description"] = field_schema["description"]
        parameters.append(parameter)
    return parameters
