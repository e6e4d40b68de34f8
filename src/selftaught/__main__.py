from selftaught.cli import entry

entry()
