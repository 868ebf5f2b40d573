"""The project's errors: one base class, so the CLI can turn any of them into one line and exit 2."""


class CnnDeriveError(Exception):
    """Base of every error cnn-derive raises on purpose.

    The message is the whole user-facing line: it names the field and what was expected.

    >>> str(CnnDeriveError("k: expected an integer >= 1, got 0"))
    'k: expected an integer >= 1, got 0'
    """


class SpecError(CnnDeriveError):
    """A network specification (sizes) that cannot describe a network."""


class CaseError(CnnDeriveError):
    """A case file (numbers for `eval`) that is unreadable or does not fit the network."""


class ParameterError(CnnDeriveError):
    """A parameter name that the network does not have."""


class RenderError(CnnDeriveError):
    """A handout that cannot be written (missing TeX engine, failed compile, bad format)."""


class SizeError(CnnDeriveError):
    """Sizes whose symbolic work would take minutes, refused up front (``--force`` goes on)."""


class TrainError(CnnDeriveError):
    """Training options, data or a spec that do not fit the task, or an output that cannot be written."""
