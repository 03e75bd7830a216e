"""Caching policies and stores. Cached values are pickled: only point a cache at a directory
you trust, as loading a pickle can run code."""
