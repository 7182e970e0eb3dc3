"""Repo tooling: the course runner, the student copy generator and the static site (not for learners)."""
