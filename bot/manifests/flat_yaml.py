"""Block YAML for flat records, byte for byte what ruamel's safe dumper writes (pure).

ruamel spends about 0.4 ms on an artifact record, most of it building and resolving tags
for nodes it then writes plainly; a registration burst renders one record per request,
under the server's one GIL. Records are mappings of short scalars, one level of nested
mappings at most, so this writes the usual ones directly: keys and strings made of
characters that never need quoting (quoted as ruamel does when YAML 1.2 would read them
as something other than a string), ints and bools. Anything else (a float, a list, a
space, a line break, a deeper mapping) returns None and ruamel writes the record.
tests/manifests/test_flat_yaml.py holds the two to the same bytes.
"""

from __future__ import annotations

import re
from typing import Any

# No indicator first, no space, quote, comment or flow character anywhere, no ':' last:
# ruamel's emitter writes such a string plain unless a resolver would read it otherwise.
_SIMPLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@+=-]*(?::+[A-Za-z0-9._/@+=-]+)*")
# The YAML 1.2 implicit types a simple string could be read as (ruamel.yaml.resolver):
# bool, float, int, null and timestamp; such a string is written single-quoted.
_NOT_A_STRING = re.compile(
    r"""(?:true|True|TRUE|false|False|FALSE
    |[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN)
    |[-+]?0b[0-1_]+
    |[-+]?0o?[0-7_]+
    |[-+]?[0-9_]+
    |[-+]?0x[0-9a-fA-F_]+
    |null|Null|NULL
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
     (?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
     (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)""",
    re.X,
)
_KEY_LIMIT = 128  # ruamel writes a longer key as an explicit "? key"


def _scalar(value: object) -> str | None:
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is not str or not _SIMPLE.fullmatch(value):
        return None
    return f"'{value}'" if _NOT_A_STRING.fullmatch(value) else value


def _key(key: object) -> str | None:
    if type(key) is not str or len(key) >= _KEY_LIMIT:
        return None
    return _scalar(key)


def render_flat(record: dict[str, Any]) -> str | None:
    """`record` as ruamel's safe dumper writes it (block style, insertion order, width
    4096), or None when it holds anything this does not write."""
    lines: list[str] = []
    for key, value in record.items():
        name = _key(key)
        if name is None:
            return None
        if type(value) is dict:
            if not value:
                lines.append(f"{name}: {{}}")
                continue
            lines.append(f"{name}:")
            for inner_key, inner in value.items():
                inner_name, text = _key(inner_key), _scalar(inner)
                if inner_name is None or text is None:
                    return None
                lines.append(f"  {inner_name}: {text}")
            continue
        text = _scalar(value)
        if text is None:
            return None
        lines.append(f"{name}: {text}")
    if not lines:
        return None  # ruamel writes "{}"
    return "\n".join(lines) + "\n"
