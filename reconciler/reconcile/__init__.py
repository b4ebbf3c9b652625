"""The reconcile pass, one module per stage (see pass_.py for the seven steps):

- ``pass_``: the orchestrator (``Reconciler``, ``PassOptions``, ``Shard``);
- ``polling``: ask the feeds, with the work dir's kept answers;
- ``apply``: write releases and promotions into the tree;
- ``drift``: what people changed by hand (adopted deployments, drift policies);
- ``proposals``: promotion pull requests;
- ``report``: what a pass did (``PassResult``, its JSON, the commit message);
- ``workstate``: the work dir's typed, versioned state file.
"""

from reconciler.reconcile.pass_ import (
    Injected,
    PassOptions,
    PassSettings,
    Reconciler,
    Shard,
    SidecarWiring,
)
from reconciler.reconcile.report import AutomaticDeployment, PassResult

__all__ = [
    "AutomaticDeployment",
    "Injected",
    "PassOptions",
    "PassResult",
    "PassSettings",
    "Reconciler",
    "Shard",
    "SidecarWiring",
]
