"""The PII leak gate: GX suites per mart, PII detectors over every text column, canary join."""
