"""Label selectors: which manifest documents a SyncPolicy governs.

The label requirement and the glob over names are shared with the operations API's
device query (`fleetward.policy`), which picks objects rather than documents.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, field_validator

from fleetward.kinds.base import Strict
from fleetward.kinds.problems import did_you_mean
from fleetward.kinds.sync_policy.wording import spec_error


class LabelRequirement(Strict):
    """A Kubernetes LabelSelectorRequirement: `key` `operator` `values`."""

    # The JSON schema states `_arity` too (one shape per operator), so that a requirement
    # valid by the operations API's /openapi.json is one this model accepts.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "properties": {
                        "operator": {"enum": ["In", "NotIn"]},
                        "values": {"minItems": 1},
                    },
                    "required": ["values"],
                },
                {
                    "properties": {
                        "operator": {"enum": ["Exists", "DoesNotExist"]},
                        "values": {"maxItems": 0},
                    }
                },
            ]
        }
    )

    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list, validate_default=True)

    @field_validator("values")
    @classmethod
    def _arity(cls, values: list[str], info: ValidationInfo) -> list[str]:
        operator = info.data.get("operator")
        if operator in ("In", "NotIn") and not values:
            raise spec_error(
                f"{operator} needs values",
                f"The operator {operator} compares the label with a list of values, "
                "and this list is empty.",
                "Add values: [...], or use Exists / DoesNotExist to test only the key.",
            )
        if operator in ("Exists", "DoesNotExist") and values:
            raise spec_error(
                f"{operator} takes no values",
                f"The operator {operator} tests only whether the key is there.",
                "Remove values, or use In / NotIn to compare the label's value.",
            )
        return values

    def holds(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":  # as in Kubernetes: a missing key is "not in"
            return not present or labels[self.key] not in self.values
        return present if self.operator == "Exists" else not present


def labels_hold(
    match_labels: Mapping[str, str],
    expressions: Iterable[LabelRequirement],
    labels: Mapping[str, str],
) -> bool:
    """Whether `labels` has every `match_labels` pair and meets every expression."""
    return all(labels.get(k) == v for k, v in match_labels.items()) and all(
        e.holds(labels) for e in expressions
    )


def names_hold(patterns: list[str], name: str) -> bool:
    """Whether `name` matches one of the fnmatch globs; no globs match every name."""
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _known_manifest_kinds() -> list[str]:
    from fleetward.kinds import REGISTRY  # the registry imports this module

    return sorted(k for k in REGISTRY if k != "SyncPolicy")


def _manifest_kind(kind: str) -> str:
    if kind == "SyncPolicy":
        raise spec_error(
            "A SyncPolicy cannot select SyncPolicy",
            "Policies govern the objects of other documents; policies themselves always "
            "apply immediately, so that a policy can never hold back its own repair.",
            "Remove SyncPolicy from selector.kinds.",
        )
    known = _known_manifest_kinds()
    if kind not in known:
        raise spec_error(
            f"Unknown manifest kind {kind!r}",
            f"A selector picks manifest documents of the kinds {', '.join(known)}.",
            did_you_mean(kind, known, "Use one of the known kinds."),
        )
    return kind


class Selector(Strict):
    """Picks manifest documents; a policy governs every object they produce."""

    kinds: list[Annotated[str, AfterValidator(_manifest_kind)]] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)  # fnmatch globs over document names ("prod-*")
    matchLabels: dict[str, str] = Field(default_factory=dict)
    matchExpressions: list[LabelRequirement] = Field(default_factory=list)

    def matches(self, kind: str, name: str, labels: Mapping[str, str] | None) -> bool:
        """Whether the document `kind/name` is selected: every given condition holds (AND).

        An empty selector matches every document. `labels` None means unknown — the
        document is gone from Git — and then the label conditions count as satisfied, so
        a policy keeps governing the removal of what it governed.
        """
        if self.kinds and kind not in self.kinds:
            return False
        if not names_hold(self.names, name):
            return False
        return labels is None or labels_hold(self.matchLabels, self.matchExpressions, labels)
