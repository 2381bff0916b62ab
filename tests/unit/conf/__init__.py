"""Tests of the configuration language (``conf``): values, errors, includes, writer, fuzz."""
