"""Categories the target schema cannot store: their share moves onto the ones it can.

A production shape may carry OTHER (free-text or unmapped type codes, small categories merged
by the sampler) or a category the development mapping names no raw value for. Refusing such
a shape would stop the flow on exactly the data real schemas produce; instead the share moves
proportionally onto the categories the mapping can write, and the move is reported (console,
generation result, Dagster metadata) so the user can name a raw value (`other:` in the
mapping) to keep it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shape_pipeline.contracts import CalibratedConfig
from shape_pipeline.mapping import EnumColumn, SchemaMapping


def writable(enum: EnumColumn, categories: Iterable[str]) -> set[str]:
    """The categories a type column can hold (all of them when the app has no type column)."""
    if enum.column is None:
        return set(categories)
    return {name for name in categories if enum.raw_for(name) is not None}


def fold_shares(shares: Mapping[str, float], keep: set[str]) -> tuple[dict[str, float], dict[str, float]]:
    """(new shares, moved shares): every category outside `keep` gives its share to those in
    `keep`, in proportion to their own shares (evenly where they all have none)."""
    moved = {name: float(p) for name, p in shares.items() if name not in keep and p > 0}
    kept = {name: float(p) for name, p in shares.items() if name in keep}
    if not moved or not kept:
        return dict(shares), {}
    base, extra = sum(kept.values()), sum(moved.values())
    grown = {name: p + (extra * p / base if base > 0 else extra / len(kept)) for name, p in kept.items()}
    return {name: grown.get(name, 0.0) for name in shares}, moved


def fold_unwritable(config: CalibratedConfig, mapping: SchemaMapping) -> tuple[CalibratedConfig, dict[str, float]]:
    """The config with unwritable categories folded away; moved shares keyed `entity.CATEGORY`."""
    conv_gen, msg_gen = config.conversation_generation, config.message_generation
    conv, conv_moved = fold_shares(
        conv_gen.type_distribution, writable(mapping.conversations.type, conv_gen.type_distribution)
    )
    msg, msg_moved = fold_shares(msg_gen.type_distribution, writable(mapping.messages.type, msg_gen.type_distribution))
    moved = {f"conversations.{k}": v for k, v in conv_moved.items()}
    moved |= {f"messages.{k}": v for k, v in msg_moved.items()}
    if not moved:
        return config, {}
    updated = config.model_copy(
        update={
            "conversation_generation": conv_gen.model_copy(update={"type_distribution": conv}),
            "message_generation": msg_gen.model_copy(update={"type_distribution": msg}),
        }
    )
    return updated, moved


def type_shares(config: CalibratedConfig) -> dict[str, dict[str, float]]:
    """Entity -> category shares of the config."""
    return {
        "conversations": dict(config.conversation_generation.type_distribution),
        "messages": dict(config.message_generation.type_distribution),
    }


def describe_moves(moved: Mapping[str, float], shares_after: Mapping[str, Mapping[str, float]]) -> list[str]:
    """One warning line per entity: which shares moved and onto what."""
    lines: list[str] = []
    for entity in ("conversations", "messages"):
        parts = [(key.split(".", 1)[1], share) for key, share in moved.items() if key.startswith(entity + ".")]
        if not parts:
            continue
        total = sum(share for _, share in parts)
        names = ", ".join(f"{name} {share:.1%}" for name, share in parts)
        onto = ", ".join(n for n, p in shares_after[entity].items() if p > 0)
        lines.append(
            f"{entity}.type: the mapping has no raw value for {names}; {total:.1%} of {entity} "
            f"moved proportionally onto {onto} (name one with 'other:' or 'values:' in the mapping to keep it)"
        )
    return lines
