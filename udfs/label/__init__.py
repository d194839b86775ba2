"""The Essential-Web taxonomy: parser, label UDF body, agreement measures."""
