"""Deletion requests (tombstones): intake, propagation, physical erasure, evidence."""
