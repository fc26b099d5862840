"""`bundle analyze` and `bundle check` (placeholder until the checks package lands)."""
