"""Operator console: a Textual app attached to the running daemon over the control socket.

Imports nothing from ``appliance.pipeline.pipeline``: everything it knows comes over the socket.
"""
