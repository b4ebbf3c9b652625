"""Shared fixtures live in tests/helpers/*; registered here as plugins."""

pytest_plugins = [
    "tests.helpers.registry",
    "tests.helpers.gitserver",
    "tests.helpers.helmrepo",
    "tests.helpers.sshserver",
]
