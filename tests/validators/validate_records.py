#!/usr/bin/env python3
"""Validates the agent's JSON lines against docs/schemas/ with `jsonschema`
(Draft 2020-12, formats not asserted).

A record's schema file is chosen by its `schema` and `type`:
`verifier.alert.v1` records by type (`alert`, `alert-update`,
`alert-suppressed`), every other `verifier.<name>.v1` by name (`exec`,
`library`, `ready`, `write`, `throttle`, `warning`, `stats`). With `--falco`, every
record is checked against `falco-event.schema.json` instead. A record with
no schema file is an error: a new kind of record needs its schema.

Usage: validate_records.py --schemas DIR [--falco] FILE...
Prints the records checked per schema file; exit 0 when all are valid, 1
when one is not (each error printed), 2 when `jsonschema` is missing (run
`cargo xtask setup`).
"""
import argparse
import collections
import json
import os
import re
import sys

try:
    import jsonschema
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"jsonschema is needed ({exc}); run `cargo xtask setup`", file=sys.stderr)
    sys.exit(2)


def schema_file(record: dict, falco: bool) -> str | None:
    if falco:
        return "falco-event"
    name = record.get("schema")
    if name == "verifier.alert.v1":
        return record.get("type")
    m = re.fullmatch(r"verifier\.([a-z-]+)\.v1", name or "")
    return m.group(1) if m else None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schemas", required=True)
    parser.add_argument("--falco", action="store_true")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    validators = {}
    seen = collections.Counter()
    errors = 0
    for name in args.files:
        with open(name, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{name}:{n}"
                record = json.loads(line)
                kind = schema_file(record, args.falco)
                path = os.path.join(args.schemas, f"{kind}.schema.json")
                if kind is None or not os.path.exists(path):
                    print(f"{where}: no schema file for schema={record.get('schema')!r} type={record.get('type')!r}")
                    errors += 1
                    continue
                if kind not in validators:
                    with open(path, encoding="utf-8") as s:
                        schema = json.load(s)
                    jsonschema.Draft202012Validator.check_schema(schema)
                    validators[kind] = jsonschema.Draft202012Validator(schema)
                seen[kind] += 1
                for e in validators[kind].iter_errors(record):
                    at = "/".join(str(p) for p in e.absolute_path)
                    print(f"{where}: {kind}.schema.json at /{at}: {e.message}")
                    errors += 1
    for kind, count in sorted(seen.items()):
        print(f"checked {kind}: {count}")
    print(f"{sum(seen.values())} records, {errors} errors")
    return 0 if errors == 0 and seen else 1


if __name__ == "__main__":
    sys.exit(main())
