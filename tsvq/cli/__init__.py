"""Command-line interface (``tsvq``)."""
