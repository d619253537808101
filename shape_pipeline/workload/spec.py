"""The workload file: the app's typical queries, whose plans production and synthetic must share.

A workload is YAML. Each query has SQL, an optional description, and the parameters its SQL
uses as `:name`::

    name: canonical-chat
    queries:
      latest_messages:
        description: The latest 50 messages of a conversation
        sql: |
          SELECT {messages.id}, {messages.sender_id}, {messages.content}, {messages.created_at}
          FROM {messages} WHERE {messages.conversation_id} = :conversation
          ORDER BY {messages.created_at} DESC LIMIT 50
        params:
          conversation: {entity: conversation, by: messages, at: [p99, p50, p10]}

SQL. `{entity}` (users, conversations, members, messages) is the app's table as the schema
mapping names it, schema-qualified and quoted where needed; `{entity.field}` is its column,
qualified by the table (`{messages.created_at}` -> `"Posts"."CreateAt"` under a Mattermost
mapping). After an alias, `m.{messages.created_at}` gives the bare column. Fields are the
mapping's logical names: users.id/username/email/display_name/created_at,
conversations.id/type/name/created_at, members.conversation_id/user_id/joined_at,
messages.id/conversation_id/sender_id/content/type/created_at. SQL without braces is used as
written (physical SQL for one schema). Braces and colons inside quotes or comments are text.

Parameters. Every `:name` the SQL uses is declared under `params`, and every declared one used:

- A ranked entity: `{entity: conversation, by: messages | members, at: [p99, p50, p10]}`,
  `{entity: user, by: messages_sent | conversations, at: [...]}`. Rank pXX is the entity at
  that position of all entities ordered by their count (p0 the smallest, p100 the largest;
  ties by id), counted over whole tables, as the app sees them.
- A member pair: `{entity: member, by: messages, at: [...]}`, a (conversation, user)
  membership ranked by the user's messages in that conversation. A pair parameter `NAME` is
  used in SQL as `:NAME_conversation` and `:NAME_user`.
- A time: `{time: window_end}`, or `{time: window_end, minus: 7 days}` (a whole number of
  minutes, hours, days or weeks). The value takes the unit of `column` (a time field, default
  `messages.created_at`): a timestamp, or the epoch number when the mapping says epoch_s or
  epoch_ms. `now: window_end` is short for `{time: window_end}`. The window end is the latest
  message time unless given.

All ranked parameters of one query list the same ranks; they are zipped (the p99 run takes the
p99 of each). A query with ranked parameters runs once per rank, one without runs once as
"all". The chosen values stay inside the database (see `parameters`).
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from shape_pipeline.files import load_yaml_model
from shape_pipeline.mapping import SchemaMapping, TimeColumn
from shape_pipeline.workload.render import (
    ENTITY_FIELDS,
    check_placeholders,
    parameter_names,
    tokenize,
)

DEFAULT_RUNS = 3
DEFAULT_WORKLOAD = "default.yaml"  # package data: the canonical schema's workload
DEFAULT_NAME = "default"  # `--workload default` (CLI, Dagster config) names the shipped workload
ALL = "all"  # the single rank label of a query without ranked parameters
RANK = re.compile(r"p(100|[1-9]?[0-9])")
RANKED_BY: dict[str, tuple[str, ...]] = {
    "conversation": ("messages", "members"),
    "user": ("messages_sent", "conversations"),
    "member": ("messages",),
}
MEMBER_PARTS = ("conversation", "user")
WINDOW_END = "window_end"
DEFAULT_TIME_COLUMN = "messages.created_at"
_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400, "week": 604_800}
_DURATION = re.compile(r"\s*(\d+)\s*(minute|hour|day|week)s?\s*")
_NAME = re.compile(r"[A-Za-z_]\w*")
_QUERY_NAME = re.compile(r"[A-Za-z0-9_][\w.-]*")


def time_fields() -> tuple[str, ...]:
    """`entity.field` of every mapping field that holds a time (where a time parameter takes its unit)."""
    out = []
    for entity in ENTITY_FIELDS:
        model = SchemaMapping.model_fields[entity].annotation
        for field, info in model.model_fields.items():  # type: ignore[union-attr]
            if info.annotation is TimeColumn or TimeColumn in get_args(info.annotation):
                out.append(f"{entity}.{field}")
    return tuple(out)


TIME_FIELDS = time_fields()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RankedParameter(_Strict):
    """An entity chosen by its rank in a count (`by`), once per label in `at`."""

    entity: Literal["conversation", "user", "member"]
    by: str
    at: list[str] = Field(min_length=1)

    @field_validator("at")
    @classmethod
    def _ranks(cls, value: list[str]) -> list[str]:
        for label in value:
            if not RANK.fullmatch(label):
                raise ValueError(f"rank '{label}' is not p0 to p100 (e.g. p99, p50, p10)")
        if len(set(value)) != len(value):
            raise ValueError("a rank is listed twice")
        return value

    @model_validator(mode="after")
    def _known_count(self) -> RankedParameter:
        allowed = RANKED_BY[self.entity]
        if self.by not in allowed:
            raise ValueError(f"a {self.entity} is ranked by {' or '.join(allowed)}, not '{self.by}'")
        return self

    def sql_names(self, name: str) -> list[str]:
        """The `:names` this parameter fills: itself, or NAME_conversation and NAME_user for a pair."""
        return [f"{name}_{part}" for part in MEMBER_PARTS] if self.entity == "member" else [name]


class TimeParameter(_Strict):
    """The window end, optionally minus a duration, in the unit of `column`."""

    time: Literal["window_end"]
    minus: str | None = None
    column: str = DEFAULT_TIME_COLUMN

    @field_validator("minus")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.fullmatch(value):
            raise ValueError(f"'{value}' is not a duration like 7 days, 24 hours or 30 minutes")
        return value

    @field_validator("column")
    @classmethod
    def _time_field(cls, value: str) -> str:
        if value not in TIME_FIELDS:
            raise ValueError(f"'{value}' is not a time field (use {', '.join(TIME_FIELDS)})")
        return value

    @property
    def minus_seconds(self) -> int:
        if self.minus is None:
            return 0
        match = _DURATION.fullmatch(self.minus)
        assert match is not None
        return int(match.group(1)) * _SECONDS[match.group(2)]

    @property
    def entity_field(self) -> tuple[str, str]:
        entity, _, field = self.column.partition(".")
        return entity, field


def _kind(value: Any) -> str:
    if isinstance(value, TimeParameter) or (isinstance(value, dict) and "time" in value):
        return "time"
    return "ranked"


def _shorthand(value: Any) -> Any:
    return {"time": value} if value == WINDOW_END else value


Parameter = Annotated[
    Annotated[RankedParameter, Tag("ranked")] | Annotated[TimeParameter, Tag("time")],
    Discriminator(_kind),
]


class WorkloadQuery(_Strict):
    """One query of the app: SQL with `{entity.field}` placeholders and `:name` parameters."""

    description: str = ""
    sql: str = Field(min_length=1)
    params: dict[str, Parameter] = Field(default_factory=dict)

    @field_validator("params", mode="before")
    @classmethod
    def _shorthands(cls, value: Any) -> Any:
        return {k: _shorthand(v) for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _params_match_sql(self) -> WorkloadQuery:
        tokens = tokenize(self.sql)
        check_placeholders(tokens)
        used = parameter_names(tokens)
        declared: dict[str, str] = {}
        for name, param in self.params.items():
            if not _NAME.fullmatch(name):
                raise ValueError(f"params: '{name}' is not a parameter name (letters, digits, _)")
            names = param.sql_names(name) if isinstance(param, RankedParameter) else [name]
            for sql_name in names:
                if sql_name in declared:
                    raise ValueError(f"params: :{sql_name} is declared by both {declared[sql_name]} and {name}")
                declared[sql_name] = name
        undeclared = [f":{n}" for n in used if n not in declared]
        if undeclared:
            raise ValueError(f"sql uses {', '.join(undeclared)}, not declared in params")
        unused = [f":{n}" for n in declared if n not in used]
        if unused:
            raise ValueError(f"params: {', '.join(unused)} not used in sql")
        rank_lists = {tuple(p.at) for p in self.params.values() if isinstance(p, RankedParameter)}
        if len(rank_lists) > 1:
            raise ValueError("params: all ranked parameters of a query must list the same ranks")
        return self

    def ranks(self) -> list[str]:
        """The rank labels this query runs at (`["all"]` without ranked parameters)."""
        for param in self.params.values():
            if isinstance(param, RankedParameter):
                return list(param.at)
        return [ALL]


class Workload(_Strict):
    """A named set of queries (see the module docstring for the file format)."""

    name: str = Field(min_length=1)
    queries: dict[str, WorkloadQuery] = Field(min_length=1)

    @field_validator("queries")
    @classmethod
    def _query_names(cls, value: dict[str, WorkloadQuery]) -> dict[str, WorkloadQuery]:
        for name in value:
            if not _QUERY_NAME.fullmatch(name):
                raise ValueError(f"'{name}' is not a query name (letters, digits, _ . -)")
        return value

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of names, SQL as written and parameters (descriptions aside):
        the same workload hashes the same whatever its YAML spelling or the schema it runs on."""
        canonical = {
            "name": self.name,
            "queries": {
                name: {"sql": q.sql, "params": {k: v.model_dump(mode="json") for k, v in q.params.items()}}
                for name, q in self.queries.items()
            },
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def pairs(self) -> list[tuple[str, str]]:
        """Every (query name, rank label) the workload runs, in file order."""
        return [(name, rank) for name, query in self.queries.items() for rank in query.ranks()]


def describe_error(error: ValidationError) -> str:
    """The first problem as `queries.NAME.params.X: message` (union tags left out of the path)."""
    first = error.errors()[0]
    parts = [str(p) for p in first.get("loc", ()) if p not in ("ranked", "time")]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        message = f"unknown key '{parts.pop()}'" if parts else "unknown key"
    return f"{'.'.join(parts) or '(top level)'}: {message}"


def default_workload_path() -> Path:
    """The shipped workload for the canonical schema."""
    return Path(str(resources.files("shape_pipeline.workload").joinpath(DEFAULT_WORKLOAD)))


def load_workload(path: str | Path | None) -> Workload:
    """Read a workload YAML file (None or "default": the shipped default for the canonical schema).

    Bad input is one `ShapePipelineError` line naming the file and the field.
    """
    file = default_workload_path() if path is None or str(path) in ("", DEFAULT_NAME) else Path(path)
    return load_yaml_model(
        file,
        Workload,
        what="workload",
        expected="a workload file must be a YAML mapping with name and queries",
        describe=describe_error,
    )
