from sigbridge.cli import run

run()
