#!/usr/bin/env python3
"""Validates OCSF records (JSON lines) strictly against the OCSF schema
shipped in PyPI `ocsf-json-schema`, with `jsonschema`.

Each record is checked against its class (`class_uid`) with exactly the
profiles it declares in `metadata.profiles`; the generated schemas set
`additionalProperties: false` on every object, so an attribute outside the
class and its declared profiles is an error, as is a missing required one.

Usage: validate_ocsf.py [--version 1.1.0] FILE...
Exit 0 when every record is valid, 1 when one is not (each error printed),
2 when a library is missing (run `cargo xtask setup`, or
`python3 -m pip install -r tests/validators/requirements.txt`).
"""
import argparse
import json
import sys

try:
    import jsonschema
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"ocsf-json-schema and jsonschema are needed ({exc}); run `cargo xtask setup`", file=sys.stderr)
    sys.exit(2)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", default="1.1.0")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    ocsf = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=args.version))
    validators = {}
    records = errors = 0
    for name in args.files:
        with open(name, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                records += 1
                where = f"{name}:{n}"
                try:
                    record = json.loads(line)
                    class_name = ocsf.lookup_class_name_from_uid(record["class_uid"])
                except (ValueError, KeyError, TypeError) as exc:
                    print(f"{where}: not an OCSF record: {exc}")
                    errors += 1
                    continue
                profiles = tuple(sorted(record.get("metadata", {}).get("profiles", [])))
                key = (class_name, profiles)
                if key not in validators:
                    schema = ocsf.get_class_schema(class_name, list(profiles))
                    validators[key] = jsonschema.Draft202012Validator(schema)
                for e in validators[key].iter_errors(record):
                    path = "/".join(str(p) for p in e.absolute_path)
                    print(f"{where}: {class_name} {list(profiles)} at /{path}: {e.message}")
                    errors += 1
    print(f"{records} OCSF {args.version} records, {errors} errors")
    if records == 0:
        print("no records to validate")
        return 1
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
