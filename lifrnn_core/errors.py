"""Exceptions raised by the science code, each with a message a user can act on."""


class LifrnnError(Exception):
    """Base class of every error lifrnn_core raises on purpose."""


class InvalidNetworkError(LifrnnError, ValueError):
    """A weight matrix (or other network tensor) breaks a structural law: shape, Dale's law, ..."""


class NotConvergedError(LifrnnError):
    """An iterative method stopped at its iteration limit before meeting its target."""


class DivergenceError(LifrnnError):
    """A simulation or optimisation produced non-finite or exploding values."""

    def __init__(
        self, message: str, iteration: int | None = None, last_finite: object | None = None
    ) -> None:
        super().__init__(message)
        self.iteration = iteration
        self.last_finite = last_finite
        """The last finite state of what diverged (e.g. initial states), kept for inspection."""
