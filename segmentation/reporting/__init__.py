"""The segment profile and the reports written from it."""
