"""The Great Expectations suites (JSON), one per mart plus the PII suite. This folder is the package
``plus_analytics.expectations`` once installed (mapped in pyproject.toml), so a wheel carries it."""
