"""Dashboard marts: built from staging into a build file, published atomically after the gate."""
