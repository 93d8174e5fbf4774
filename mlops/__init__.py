"""The `mlops` command: one entry point that stands up, checks, uses and tears down a stack."""
