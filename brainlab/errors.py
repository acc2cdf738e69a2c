"""Exceptions raised for input a user can get wrong.

Every message names what was expected, what was found and where, so that the
CLI and the app can show it as is.
"""


class BrainlabInputError(ValueError):
    """Bad user input: wrong shape, NaN values, missing columns, unknown names."""


class CheckpointMismatchError(BrainlabInputError):
    """A checkpoint was built for another model type, grid or cohort."""
