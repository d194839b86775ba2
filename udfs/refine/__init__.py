"""ProX programs: the safe parser, the executor and the refine UDF body."""
