#!/usr/bin/env python3
"""Validates CycloneDX JSON files against the official schema with
cyclonedx-python-lib's JsonStrictValidator (no extra properties allowed).

Usage: validate_cyclonedx.py [--spec 1.6] FILE...
Exit 0 when every file is valid, 1 when one is not, 2 when the library is
missing (run `cargo xtask setup`, or
`python3 -m pip install -r tests/validators/requirements.txt`).
"""
import argparse
import sys

try:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"cyclonedx-python-lib[json-validation] is not installed ({exc}); run `cargo xtask setup`", file=sys.stderr)
    sys.exit(2)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", default="1.6")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    version = SchemaVersion.from_version(args.spec)
    validator = JsonStrictValidator(version)
    failed = 0
    for name in args.files:
        with open(name, encoding="utf-8") as f:
            data = f.read()
        errors = validator.validate_str(data, all_errors=True)
        errors = list(errors) if errors is not None else []
        if errors:
            failed += 1
            for err in errors[:20]:
                detail = getattr(err, "data", None)
                message = getattr(detail, "message", None) or str(err).splitlines()[0]
                where = "/".join(str(p) for p in getattr(detail, "absolute_path", []))
                print(f"{name}: INVALID CycloneDX {args.spec} at /{where}: {message}", file=sys.stderr)
        else:
            print(f"{name}: valid CycloneDX {args.spec}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
