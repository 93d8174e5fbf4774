"""Test helpers, one module per job: rendering, local servers, tools."""
