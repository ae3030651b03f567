"""Reading the JSON or YAML files an operator hands the server (policy file, users file).

One reader so both files accept the same formats and fail the same way: one line naming the file and what was
wrong, as the error type the caller asks for.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_json_or_yaml(path: Path, what: str, error: type[Exception]) -> object:
    """The document in ``path`` (JSON, else YAML; None for an empty file), or ``error`` naming ``what``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml  # only when a file is not JSON: PyYAML is in the server extra, but start-up need not pay

        return yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError and friends
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{what} {path} is neither JSON nor YAML: {first}") from None
