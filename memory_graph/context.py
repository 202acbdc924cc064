"""Render search hits and their subgraph as prompt context within a token budget."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from memory_graph.facts import CANCELLED, CURRENT, FORMER, status_text
from memory_graph.records import EntityRef, MemoryHit, RelationRef

TokenCounter = Callable[[str], int]


def approx_tokens(text: str) -> int:
    """About four characters per token: the usual estimate for English with BPE tokenisers."""
    return max(1, math.ceil(len(text) / 4))


def render_context(
    hits: Sequence[MemoryHit],
    *,
    max_tokens: int = 800,
    count_tokens: TokenCounter = approx_tokens,
    max_chars_per_hit: int = 600,
) -> str:
    """Memories (best first), then the relations among their entities with evidence, then the
    entities, each section cut to fit ``max_tokens``: memories take up to 65 % of the budget,
    relations up to 90 %, entities the rest. Empty when nothing fits.
    """
    budget = max(0, max_tokens)
    lines: list[str] = []
    used = 0

    def take(line: str, limit: float) -> bool:
        nonlocal used
        cost = count_tokens(line + "\n")
        if used + cost > limit:
            return False
        lines.append(line)
        used += cost
        return True

    if not hits or budget == 0:
        return ""
    if take("## Memories", budget):
        for i, hit in enumerate(hits, 1):
            when = hit.observed_at.date().isoformat() if hit.observed_at else "undated"
            text = " ".join(hit.text.split())
            if len(text) > max_chars_per_hit:
                text = text[: max_chars_per_hit - 1].rstrip() + "…"
            source = f", {hit.external_id}" if hit.external_id else ""
            states = [r for r in hit.relations if r.status]
            if states and all(r.status in (FORMER, CANCELLED) for r in states):
                # Every value it states was replaced (or never happened): not for use as current.
                outdated = "; ".join(f"{r.source.name} {r.predicate} {r.target.name}" for r in states[:3])
                text += f" [outdated: {outdated} no longer holds]"
            if not take(f"[{i}] ({when}{source}) {text}", budget * 0.65 if i > 1 else budget):
                break

    relations = _unique_relations(hits)
    if relations and take("## Relations", budget * 0.9):
        for rel in relations:
            evidence = " ".join(rel.evidence.split())
            if len(evidence) > 200:
                evidence = evidence[:199].rstrip() + "…"
            status = f" [{status_text(rel.status, rel.valid_from, rel.valid_until)}]" if rel.status else ""
            line = f'- {rel.source.name} —{rel.predicate}→ {rel.target.name}{status} ("{evidence}")'
            if not take(line, budget * 0.9):
                break

    entities = _unique_entities(hits)
    if entities and take("## Entities", budget):
        for ent in entities:
            if not take(f"- {ent.name} ({ent.label})", budget):
                break
    if lines and lines[-1].startswith("## "):
        lines.pop()
    return "\n".join(lines)


def _unique_relations(hits: Sequence[MemoryHit]) -> list[RelationRef]:
    """The hits' relations once each: current values first, then by confidence."""
    seen: dict[int, RelationRef] = {}
    for hit in hits:
        for rel in sorted(hit.relations, key=lambda r: -r.confidence):
            seen.setdefault(rel.id, rel)
    return sorted(seen.values(), key=lambda r: (r.status != CURRENT, r.status in (FORMER, CANCELLED), -r.confidence))


def _unique_entities(hits: Sequence[MemoryHit]) -> list[EntityRef]:
    seen: dict[int, EntityRef] = {}
    for hit in hits:
        for ent in hit.entities:
            seen.setdefault(ent.id, ent)
    named = [e for e in seen.values() if e.label != "CONCEPT"]
    return named + [e for e in seen.values() if e.label == "CONCEPT"]
