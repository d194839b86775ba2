"""Refinery's Spark jobs: one module per stage plus a small shared base."""
