"""The rule every resource name (`metadata.name`) follows, like a Kubernetes name.

A leaf: the manifest models (`base`) check names against it and the problem
wording (`problems`) suggests a name that passes it, so neither imports the other.
"""

from __future__ import annotations

import re

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
NAME_RE = re.compile(NAME_PATTERN)
