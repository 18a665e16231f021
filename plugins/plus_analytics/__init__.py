"""plus-analytics: privacy-enforcing analytics pipeline for the Plus Platform (Airflow + DuckDB)."""

__version__ = "0.1.0"
