"""Extract one version's OpenAPI schema from a CustomResourceDefinition, without descriptions.

    python deploy/kubernetes/schemas/extract_crd_schema.py CRD.yaml VERSION > schema.json

Used once per vendored schema (see README.md beside this file): the tests validate custom
resources offline against the result. Descriptions are only prose; dropping them keeps the
vendored file small. Nothing else is changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

# Keywords whose value is a schema, or a list or map of schemas.
_SCHEMA = ("items", "not", "additionalProperties")
_SCHEMA_LIST = ("allOf", "anyOf", "oneOf")
_SCHEMA_MAP = ("properties", "patternProperties")


def strip_descriptions(schema: Any) -> Any:
    """The schema with every `description` keyword removed (not properties so named)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in _SCHEMA:
            out[key] = strip_descriptions(value)
        elif key in _SCHEMA_LIST:
            out[key] = [strip_descriptions(item) for item in value]
        elif key in _SCHEMA_MAP:
            out[key] = {name: strip_descriptions(item) for name, item in value.items()}
        else:
            out[key] = value
    return out


def extract(crd: dict[str, Any], version: str) -> dict[str, Any]:
    for candidate in crd["spec"]["versions"]:
        if candidate["name"] == version:
            schema: dict[str, Any] = strip_descriptions(candidate["schema"]["openAPIV3Schema"])
            return schema
    raise SystemExit(f"{crd['metadata']['name']} has no version {version}")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    crd = yaml.safe_load(Path(argv[0]).read_text())
    json.dump(extract(crd, argv[1]), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
