"""The test suite (a package, so that `pytest` and `python -m pytest` import its helpers alike)."""
