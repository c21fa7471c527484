"""Living with code changes: ``rt.patched(name)`` and ``rt.deprecate_patch(name)``.

A workflow in flight replays its history against today's code. To change what a workflow
does without breaking the workflows already running, branch on ``patched``:

    if await rt.patched("charge-in-cents"):
        ...  # new code: taken by new runs, and by histories that recorded this marker
    else:
        ...  # old code: taken when replaying a history recorded before the patch

Once no history from before the patch is left, replace the branch with
``await rt.deprecate_patch("charge-in-cents")`` and the new code alone: it passes over the
marker where a history has one.
"""

from __future__ import annotations

from . import _operations as operations
from . import _replay as replay

__all__ = ["PatchCalls"]


class PatchCalls:
    """Mixin for ``Runtime``: ``patched`` and ``deprecate_patch``."""

    async def patched(self, name: str) -> bool:
        """True on new runs (a marker is recorded) and when replaying a history with this
        patch's marker here; False when replaying a history recorded before the patch.
        Meeting another patch's marker is a ``NonDeterminismError``."""
        return await operations.patched(replay.require("patched()"), name)

    async def deprecate_patch(self, name: str) -> None:
        """Stand-in for a removed ``patched(name)`` branch: records nothing, and passes
        over the patch's marker in a history that has one."""
        operations.deprecate_patch(replay.require("deprecate_patch()"), name)
