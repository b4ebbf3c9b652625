"""Verified deployments: does the commit the reconciler pushed actually run?

The reconciler never writes to a cluster. After it deploys a release to an
environment with ``verify:``, later passes *read* what the GitOps agent reports about
that commit and turn it into an :class:`Outcome`:

* :mod:`.model` - the checks' configuration, the deployment, the outcome;
* :mod:`.judge` - pure: an agent's document in, an outcome out;
* :mod:`.template` - the ``expect`` template of http checks;
* :mod:`.probes` - I/O: Kubernetes (lightkube), Argo CD's API, Git hosts, HTTP;
* :mod:`.runner` - runs the checks of one environment for one deployment.

This package's ``__init__`` imports nothing, so the pure core can use :mod:`.model`.

The runner's ``Verifier`` runs every check of a ``VerifySpec`` for one deployment
and combines them (``judge.combine``): an outage is pending, never failed, until the
spec's ``timeout`` has passed since the deployment.
"""
