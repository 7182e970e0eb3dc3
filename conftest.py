"""Repository-wide pytest set-up: progress lines and a heartbeat for every run (tools/pytest_progress.py).

At the repository root so that both ``pytest tests`` and ``pytest --nbval notebooks/...`` load it.
"""

pytest_plugins = ["tools.pytest_progress"]
