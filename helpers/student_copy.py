"""Moved to ``tools.student_copy`` (repo tooling); forwards ``python -m helpers.student_copy`` until callers switch."""

from tools.student_copy import main

if __name__ == "__main__":
    raise SystemExit(main())
