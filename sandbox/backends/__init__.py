"""Backends carry a batch of run requests to the runner and its results back; they never judge anything."""
