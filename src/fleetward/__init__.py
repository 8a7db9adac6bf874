"""fleetward: a declarative GitOps reconciler for fleets, asset rules, tasks and workflows."""

__version__ = "0.1.0"

__all__ = ["__version__"]
