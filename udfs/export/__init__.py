"""Training-mix export and the data report's page."""
