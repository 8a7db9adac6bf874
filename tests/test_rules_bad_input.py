"""Bad asset rules and stream sets: a readable error at file:line:column, the store untouched.

Same harness as test_bad_input: a good revision is applied, a bad one is
committed on top, and `validate`, `plan` and `apply` must all exit 1 with the
Error / Reason / Resolution shape, at the right place, changing nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from test_bad_input import (  # noqa: F401  (template, world: pytest fixtures)
    Case,
    FileContent,
    World,
    expect,
    template,
    world,
)

STREAMS = """\
apiVersion: fleetward/v1
kind: StreamSet
metadata:
  name: tanks
spec:
  streams:
    - {id: SL-Tank01Press, metadata: {site: San Leandro}}
    - {id: SL-Tank01Temp, metadata: {site: San Leandro}}
"""

CSV_SET = """\
apiVersion: fleetward/v1
kind: StreamSet
metadata:
  name: tank-csv
spec:
  csv: streams.csv
"""

EXPRESSIONS = """\
    - field: Id
      specifications:
        - {type: Group, name: site}
        - {type: Delimiter, value: "-"}
        - {type: Literal, value: Tank}
        - {type: Group, name: tank}
"""

OUTPUTS = """\
    - field: Asset
      value:
        id: "{site}-Tank{tank}"
        name: "Tank {tank}"
        streamReferences:
          - {id: "{streamId}", streamId: "{streamId}"}
"""


def rule(expressions: str = EXPRESSIONS, outputs: str = OUTPUTS) -> str:
    """An AssetRule; `expressions` and `outputs` are YAML lines under spec (line 7 on)."""
    return (
        "apiVersion: fleetward/v1\nkind: AssetRule\nmetadata:\n  name: tanks\nspec:\n"
        f"  expressions:\n{expressions}  outputs:\n{outputs}"
    )


def with_streams(files: Mapping[str, FileContent]) -> dict[str, FileContent]:
    return {"manifests/streams.yaml": STREAMS, **files}


CASES: dict[str, Case] = {
    "specification-type-that-does-not-exist": Case(
        with_streams(
            {
                "manifests/rule.yaml": rule(
                    EXPRESSIONS.replace("type: Group, name: tank", "type: Groop, name: tank")
                )
            }
        ),
        # "        - {type: Groop, name: tank}": the value Groop is at column 18 of line 12.
        (
            expect(
                "manifests/rule.yaml:12:18",
                "spec.expressions[0].specifications[3].type",
                "Groop",
                'Did you mean "Group"?',
            ),
        ),
    ),
    "unspecified-specification-type": Case(
        with_streams(
            {
                "manifests/rule.yaml": rule(
                    EXPRESSIONS.replace("type: Literal, value: Tank", "Type: 0, Value: Tank")
                )
            }
        ),
        (expect("manifests/rule.yaml:11:18", "Unspecified matches nothing"),),
    ),
    "group-without-a-name": Case(
        with_streams(
            {
                "manifests/rule.yaml": rule(
                    EXPRESSIONS.replace("{type: Group, name: tank}", "{type: Group}")
                )
            }
        ),
        # Outputs that use {tank} are wrong too: the token no longer exists.
        (
            expect("manifests/rule.yaml:12:11", "Group without a name", "Add name:"),
            expect("manifests/rule.yaml:16:13", "Unknown placeholder {tank}"),
        ),
        count=3,
    ),
    "expression-on-a-field-that-does-not-exist": Case(
        with_streams(
            {"manifests/rule.yaml": rule(EXPRESSIONS.replace("field: Id", "field: Nmae"))}
        ),
        (
            expect(
                "manifests/rule.yaml:7:14", "Unknown stream field 'Nmae'", 'Did you mean "Name"?'
            ),
        ),
    ),
    # Line 20 is "    - field: Metadata"; the key 1 is at column 15 of line 21.
    "metadata-key-that-is-not-text": Case(
        with_streams(
            {
                "manifests/rule.yaml": rule(
                    outputs=OUTPUTS + '    - field: Metadata\n      value: {1: "{site}"}\n'
                )
            }
        ),
        (expect("manifests/rule.yaml:21:15", "Mapping key is not a string", "Quote the key"),),
    ),
    "output-with-an-unknown-field": Case(
        with_streams({"manifests/rule.yaml": rule(outputs=OUTPUTS.replace("name:", "nmae:"))}),
        (expect("manifests/rule.yaml:17:9", 'Unknown field "nmae"', 'Did you mean "name"?'),),
    ),
    "empty-expressions-list": Case(
        with_streams({"manifests/rule.yaml": rule(expressions="    []\n")}),
        (expect("manifests/rule.yaml:6:3", "spec.expressions", "at least 1 item"),),
    ),
    "unknown-placeholder": Case(
        with_streams(
            {"manifests/rule.yaml": rule(outputs=OUTPUTS.replace("Tank {tank}", "Tank {tnk}"))}
        ),
        (expect("manifests/rule.yaml:17:15", "Unknown placeholder {tnk}", 'Did you mean "tank"?'),),
    ),
    "csv-with-a-missing-column": Case(
        {
            "manifests/streams.yaml": CSV_SET,
            "manifests/streams.csv": "name,description\nTank 01,pressure\n",
        },
        (expect("manifests/streams.csv:1:1", 'Missing CSV column "id"', "Add an id column"),),
    ),
    "csv-row-with-a-missing-field": Case(
        {
            "manifests/streams.yaml": CSV_SET,
            "manifests/streams.csv": "id,name,description\nSL-Tank01Press,Tank 01,pressure\nSL-Tank01Temp,Tank 01\n",
        },
        (expect("manifests/streams.csv:3:1", "CSV row has 2 field(s), the header 3"),),
    ),
    "csv-row-with-a-duplicate-stream-id": Case(
        {
            "manifests/streams.yaml": CSV_SET,
            "manifests/streams.csv": "id,name\nSL-Tank01Press,a\nSL-Tank01Temp,b\nSL-Tank01Press,c\n",
        },
        (expect("manifests/streams.csv:4:1", "Duplicate stream id 'SL-Tank01Press'", "line 2"),),
    ),
    "csv-unknown-column": Case(
        {
            "manifests/streams.yaml": CSV_SET,
            "manifests/streams.csv": "id,nmae\nSL-Tank01Press,a\n",
        },
        (expect("manifests/streams.csv:1:2", "Unknown CSV column 'nmae'", 'Did you mean "name"?'),),
    ),
    "csv-file-that-does-not-exist": Case(
        {"manifests/streams.yaml": CSV_SET},
        # "  csv: streams.csv": the path is at line 6, column 8.
        (expect("manifests/streams.yaml:6:8", "Data file 'streams.csv' not found"),),
    ),
    "stream-id-in-two-sets": Case(
        {
            "manifests/streams.yaml": STREAMS,
            "manifests/streams.csv": "id\nSL-Tank01Temp\n",
            "manifests/more.yaml": CSV_SET,
        },
        (
            expect(
                "manifests/streams.yaml:8:7",
                "Duplicate id 'SL-Tank01Temp'",
                "manifests/streams.csv:2:1",
            ),
        ),
    ),
    "conflicting-rules": Case(
        with_streams(
            {
                "manifests/rule.yaml": rule(),
                "manifests/rule2.yaml": rule(
                    outputs=OUTPUTS.replace("Tank {tank}", "T{tank}")
                ).replace("name: tanks", "name: tanks-too"),
            }
        ),
        (
            expect(
                "manifests/rule2.yaml:17:15",
                "Conflicting rule outputs for Asset/SL-Tank01Press",
                "AssetRule/tanks ",
                "AssetRule/tanks-too",
            ),
        ),
        count=2,  # one per asset: SL-Tank01Press and SL-Tank01Temp
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_rule_or_stream_set_is_rejected_and_changes_nothing(world: World, name: str) -> None:  # noqa: F811
    case = CASES[name]
    world.repo.commit(case.files, name)
    world.assert_rejected(*case.expected, count=case.count)
