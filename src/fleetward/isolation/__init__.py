"""Failure isolation: apply a revision's valid documents, hold back the invalid ones. Pure.

With isolation off a revision is applied whole or not at all (DESIGN §1). With
it on, every invalid document — and every document whose validity or meaning
depends on one — stays at its last applied version, and the rest is planned
as usual. The converge path hands this package the revision's valid documents,
the problems of the others (each attributed to its file and document), the
store, and the stages to run (desire, plan); it holds documents until the
remaining ones desire and plan without errors:

1. a document with problems of its own is held;
2. a file that cannot be read at all holds the documents it declared at the
   last applied revision (when the source can still read that revision), and
   every document that owns stored objects but is missing from this revision
   (it may sit in the unreadable file: a file renamed and broken in one
   commit looks exactly like that), said as an assumption; a file neither
   accounts for (a new file, or a first revision) is held under its own path:
   nothing of it is created, and its errors are reported, not dropped;
3. a document that references a held document or an object one owns (a
   task's asset, a rule's streams), declares an object a held document
   declares too, or takes over an object a held document owns, is held;
4. cross-document problems (duplicate names or ids) and plan-stage problems
   hold every document they name, and the stages run again, to a fixpoint.

A problem that belongs to no document, or a document no isolation covers (a
SyncPolicy with `isolateFailures` covers only what it selects), fails the
revision as if isolation were off.

`holding` runs these rules to a fixpoint; `attribution` maps the places problems
name (a `file:line:column`, an address, an object key) back to documents.
"""

from __future__ import annotations

from fleetward.isolation.holding import Isolated, Previous, Scope, isolate, isolating

__all__ = ["Isolated", "Previous", "Scope", "isolate", "isolating"]
