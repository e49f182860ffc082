"""Tools that build the studio's shipped assets; not part of the runtime package (see pyproject.toml)."""
