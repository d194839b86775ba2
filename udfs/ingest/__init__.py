"""WARC records to document rows: HTTP parsing, charsets, main-text extraction, language ID."""
