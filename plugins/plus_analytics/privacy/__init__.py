"""Privacy rules: normalization, keyed pseudonyms, generalization, and staging compiled from the policy."""
