"""Every table's StructType and Great Expectations suite."""
