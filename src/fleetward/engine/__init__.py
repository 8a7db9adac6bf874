"""The one converge path: lock → resolve → plan → decide → apply → record.

`converge.Engine` runs it for `fleetward apply` and every daemon run; `governor`
says what a run's writes answer to (the daemon's control, the CLI's prompt);
`run` holds one run in progress. Reporters (`fleetward.reporting`) hear each
run; the engine never imports who they are.
"""

from fleetward.engine.converge import Engine
from fleetward.engine.governor import Declined, Governor, Verdict

__all__ = ["Declined", "Engine", "Governor", "Verdict"]
