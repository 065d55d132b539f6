"""Errors that the CLI reports as one line, without a traceback."""


class HarnessError(Exception):
    """A failure whose message names its cause; shown to the user as one line."""


class ConfigError(HarnessError):
    """A study config that is malformed or asks for something impossible."""


class ReferenceDataError(HarnessError):
    """A reference-data file that is missing, unreadable or fails its checksum."""


class SelectorError(HarnessError):
    """A row selector that matches no row or more than one."""
