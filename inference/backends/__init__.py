"""Local model backends. Each is a callable: a list of texts in, one Output per text out."""

from inference.backends.base import Output
from inference.backends.loading import load_runner

__all__ = ["Output", "load_runner"]
