@echo off
rem Set up .venv with the dev tools, then ruff and the test suite (Windows).
py -3.11 "%~dp0bootstrap.py" test %*
