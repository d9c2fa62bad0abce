"""The investigator web UI: server-rendered pages over the same service functions."""
