"""Rewrite styles, the plan/generate UDF bodies and post-processing."""
