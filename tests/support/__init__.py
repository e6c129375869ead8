"""Helpers shared by the black-box end-to-end suite: a real webhook receiver, a server process
harness and polling utilities."""
