"""Harness that compiles the MQL5 include files with g++ and runs them against the daemon."""
