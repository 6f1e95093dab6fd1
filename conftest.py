"""Root conftest: shared pytest plugins for every suite (services and e2e)."""

pytest_plugins = ["taskgate_devstack.pytest_plugin"]
