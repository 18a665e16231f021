"""The pipeline's SQL files. This folder is the package ``plus_analytics.sql`` once installed (mapped in
pyproject.toml), so a wheel carries it; the code reads it through ``importlib.resources``."""
