"""Gopher / C4 / FineWeb signals, keep/drop rules, trained classifiers."""
