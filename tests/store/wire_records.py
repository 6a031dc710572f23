"""A hypothesis strategy for a record's wire form, as git or the index may hold it: the
required keys, some of the known ones, unknown ones, in any order."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

TEXT = st.text(string.ascii_letters + string.digits + " -:./", max_size=12)
VALUE = st.one_of(st.none(), st.booleans(), st.integers(), TEXT)
MAPPING = st.dictionaries(TEXT, VALUE, max_size=4)


@st.composite
def wire_records(
    draw: st.DrawFn,
    required: tuple[str, ...],
    known: Mapping[str, st.SearchStrategy[Any]],
    fixed: Mapping[str, st.SearchStrategy[Any]],
) -> dict[str, Any]:
    fields: dict[str, Any] = {key: draw(TEXT.filter(bool)) for key in required}
    fields.update({key: draw(values) for key, values in fixed.items()})
    for key, values in known.items():
        if draw(st.booleans()):
            fields[key] = draw(values)
    unknown = draw(st.dictionaries(st.text(string.ascii_lowercase, min_size=1), VALUE))
    fields.update({k: v for k, v in unknown.items() if k not in fields and k not in known})
    order = draw(st.permutations(list(fields)))
    return {key: fields[key] for key in order}
