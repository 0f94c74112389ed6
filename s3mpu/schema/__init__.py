"""JSON Schemas shipped inside the package (manifest v1, plan v1)."""
