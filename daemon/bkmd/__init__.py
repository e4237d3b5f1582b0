"""bkmd: the bkm daemon. It alone owns the job store and runs transfers."""

from bkm import __version__

__all__ = ["__version__"]
