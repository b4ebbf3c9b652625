"""reconciler: a GitOps release reconciler.

Polls container registries and Helm repositories named by the external feed
triggers in a config Git repository, creates releases from channel rules,
renders them into Kustomize overlays and promotes them through lifecycles;
every change is a Git commit.
"""

__version__ = "0.1.0"
API_VERSION = "reconciler.dev/v1"
