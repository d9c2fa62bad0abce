"""Scores beyond one face against one face: subject templates and cohort normalisation."""
