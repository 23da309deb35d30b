"""Repository-root conftest: makes the in-tree packages importable for pytest (rootdir is put on sys.path)."""
