"""The documentation site: built with mkdocs in strict mode, from docs/ and the repository."""
