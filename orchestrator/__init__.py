"""outreach: compliant debt-collection outreach (planner, gate, decision log)."""


def installed_version() -> str:
    """This installation's version (pyproject.toml's), or ``unknown`` when the package's
    metadata is missing (run from a source tree that was never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("outreach")
    except PackageNotFoundError:
        return "unknown"
