"""Moved to ``tools.course`` (repo tooling); forwards ``python -m helpers.course`` until callers switch."""

from tools.course import main

if __name__ == "__main__":
    raise SystemExit(main())
