"""Default YAML configuration shipped with the package."""
