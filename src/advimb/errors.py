"""One exception type for problems the user can fix (bad data, bad config, bad paths).

The CLI turns a :class:`UserError` into one line on stderr and exit status 2, with no
traceback; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: the message says what was wrong and what to do about it."""
