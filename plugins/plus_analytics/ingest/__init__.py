"""Ingest: landing files into the restricted zone."""
