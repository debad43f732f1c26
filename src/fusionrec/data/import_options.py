"""How to read a shop's own files: column maps, delimiter, decimal mark, timestamp format and zone.

One model for the ``[ingest]`` section of ``fusionrec.toml`` and the options of ``fusionrec ingest``
(an option given on the command line wins over the file); it applies to every file of one ingestion
(events, items and users). The ``[event_aliases]`` section is read by `event_aliases`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fusionrec.data.schema import CANONICAL_EVENT_TYPES, event_type_key

DEFAULT_WARN_SHARE = 0.05  # a warning when more than this share of rows is quarantined
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ",", "pipe": "|"}


class ImportOptions(BaseModel):
    """Reading options shared by every file of one ingestion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    map: dict[str, str] = Field(default_factory=dict)  # events: source column -> canonical name
    items_map: dict[str, str] = Field(default_factory=dict)  # catalogue columns
    users_map: dict[str, str] = Field(default_factory=dict)  # user columns
    delimiter: str | None = None  # CSV field separator; None = sniffed from the header line
    decimal: Literal[".", ","] = "."  # decimal mark of prices and quantities in text files
    # strptime format of text timestamps (e.g. "%d.%m.%Y %H:%M"); None = ISO 8601.
    timestamp_format: str | None = None
    # Unit of timestamps written as epoch numbers; None = numbers are refused (never guessed).
    epoch_unit: Literal["s", "ms", "us", "ns"] | None = None
    timezone: str = "UTC"  # zone of timestamps written without one
    warn_share: float = Field(DEFAULT_WARN_SHARE, ge=0.0, le=1.0)
    strict: bool = False  # a quarantine warning fails the command (exit 2)

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _DELIMITER_NAMES.get(value.lower(), value)
        if len(value) != 1 or value in '"\r\n':
            raise ValueError(f"a delimiter is one character (or tab, semicolon, comma, pipe), got {value!r}")
        return value

    @field_validator("timestamp_format")
    @classmethod
    def _has_directive(cls, value: str | None) -> str | None:
        if value is not None and "%" not in value:
            raise ValueError(f"a strftime format such as '%d.%m.%Y %H:%M', got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Berlin)") from None
        return value

    def merged(self, **overrides: object) -> ImportOptions:
        """These options with the given ones (None = not given) put over them."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return self.model_validate({**self.model_dump(), **given})


def event_aliases(
    aliases: Mapping[str, str], event_types: Mapping[str, float] | None = None
) -> dict[str, str]:
    """A shop's ``[event_aliases]`` (its name -> a known type) with both sides normalised.

    A target must be a canonical type or one of ``event_types`` (``[event_types]``), so a typo in
    the target is refused here instead of quarantining every row of that name.
    """
    known = {t.name for t in CANONICAL_EVENT_TYPES} | {event_type_key(n) for n in event_types or {}}
    out = {}
    for name, target in aliases.items():
        key, canonical = event_type_key(name), event_type_key(str(target))
        if canonical not in known:
            raise ValueError(
                f"{name} = {target!r}: not an event type (known: {', '.join(sorted(known))}; "
                "add new ones to [event_types])"
            )
        out[key] = canonical
    return out
