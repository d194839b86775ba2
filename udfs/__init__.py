"""Pure functions (bytes or text in, values out) used inside Spark tasks; no Spark imports here."""
