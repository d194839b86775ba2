"""Refinery: web crawls (WARC) to LLM pretraining data, as PySpark + Delta Lake jobs."""

__version__ = "0.1.0"
