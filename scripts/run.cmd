@echo off
rem The main job on Windows: set up .venv, build the extension zip, start the backend (engine auto).
py -3.11 "%~dp0bootstrap.py" run %*
