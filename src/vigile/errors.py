"""Errors vigile raises on purpose.

Every user-facing error is a :class:`VigileError`; the CLI prints it as one line
and exits non-zero without a traceback. The hierarchy::

    VigileError
    ├── UserError                 the user can fix it (exit code 2)
    │   ├── InputError            a file is unreadable or malformed; carries a Location
    │   │   └── UnknownFormatError  no reader recognises the content
    │   └── ConfigError           vigile.toml or a command-line option is wrong
    └── StoreError                the store is missing, locked or unwritable (exit code 2)

Anything else escaping to the CLI is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """Where in an input something happened: a file and a line, byte offset or record.

    >>> str(Location(Path("conn.log"), line=12))
    'conn.log:12'
    >>> str(Location(Path("a.pcap"), offset=4096))
    'a.pcap@byte 4096'
    >>> str(Location(Path("conn.parquet"), record=7))
    'conn.parquet@record 7'
    """

    path: Path
    line: int | None = None
    offset: int | None = None
    record: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.path}:{self.line}"
        if self.offset is not None:
            return f"{self.path}@byte {self.offset}"
        if self.record is not None:
            return f"{self.path}@record {self.record}"
        return str(self.path)


class VigileError(Exception):
    """Base of every error vigile raises on purpose."""

    exit_code = 1


class UserError(VigileError):
    """Something the user can fix: shown as one line, exit code 2."""

    exit_code = 2


class InputError(UserError):
    """A malformed or unreadable input, with where it happened."""

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.reason = message


class UnknownFormatError(InputError):
    """No registered reader recognises the content of a file."""


class ConfigError(UserError):
    """A wrong configuration file or command-line option."""


class StoreError(VigileError):
    """The store cannot be opened, read or written (missing, locked by another writer)."""

    exit_code = 2
