"""MinHash LSH signatures and bands."""
