"""Boolean populations: ``cd8_hladr and cd8_cd38``, ``cd4 and not treg``, ``a or (b and not c)``.

A small, strict grammar (``not`` binds tighter than ``and``, ``and`` tighter than ``or``; parentheses
group) parsed into a tree of tuples, so the config check and the gating share one reading of an
expression:

- ``("name", "cd8")``
- ``("not", node)``
- ``("and", node, node, ...)`` / ``("or", node, node, ...)``
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["BooleanSyntaxError", "evaluate", "names", "parse", "positive_names"]

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([A-Za-z][A-Za-z0-9_]*))")
_KEYWORDS = {"and", "or", "not"}

Node = tuple


class BooleanSyntaxError(ValueError):
    """An expression that is not a valid Boolean combination of population names."""


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            rest = text[position:].strip()
            raise BooleanSyntaxError(f"unexpected {rest[:12]!r} in {text!r}")
        tokens.append(match.group(match.lastindex))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise BooleanSyntaxError(f"{self.text!r} ends too early")
        self.i += 1
        return token

    def expression(self) -> Node:
        terms = [self.term()]
        while self.peek() == "or":
            self.take()
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else ("or", *terms)

    def term(self) -> Node:
        factors = [self.factor()]
        while self.peek() == "and":
            self.take()
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else ("and", *factors)

    def factor(self) -> Node:
        token = self.take()
        if token == "not":
            return ("not", self.factor())
        if token == "(":
            node = self.expression()
            if self.take() != ")":
                raise BooleanSyntaxError(f"a '(' is not closed in {self.text!r}")
            return node
        if token in _KEYWORDS or token == ")":
            raise BooleanSyntaxError(f"unexpected {token!r} in {self.text!r}")
        return ("name", token)


def parse(text: str) -> Node:
    """The tree of a Boolean expression over population names.

    Raises
    ------
    BooleanSyntaxError
        The text is empty, unbalanced, or not ``name``, ``not``, ``and``, ``or`` and parentheses.
    """
    if not str(text).strip():
        raise BooleanSyntaxError("an empty expression")
    parser = _Parser(str(text))
    node = parser.expression()
    if parser.peek() is not None:
        raise BooleanSyntaxError(f"unexpected {parser.peek()!r} in {text!r}")
    return node


def names(node: Node) -> list[str]:
    """Every population name an expression refers to, in order of first appearance."""
    if node[0] == "name":
        return [node[1]]
    seen: list[str] = []
    for child in node[1:]:
        seen += [n for n in names(child) if n not in seen]
    return seen


def positive_names(node: Node) -> list[str]:
    """The names every event of the expression must be in (the operands of a top-level ``and``).

    ``cd4 and not treg`` -> ``[cd4]``; ``a and (b or c)`` -> ``[a]``; ``a or b`` -> ``[]``.
    """
    if node[0] == "name":
        return [node[1]]
    if node[0] == "and":
        found: list[str] = []
        for child in node[1:]:
            found += [n for n in positive_names(child) if n not in found]
        return found
    return []


def evaluate(node: Node, value: Callable[[str], Any] | Mapping[str, Any]) -> Any:
    """The expression on values that support ``&``, ``|`` and ``~`` (e.g. boolean numpy arrays)."""
    lookup = value.__getitem__ if isinstance(value, Mapping) else value
    kind = node[0]
    if kind == "name":
        return lookup(node[1])
    if kind == "not":
        return ~evaluate(node[1], lookup)
    parts = [evaluate(child, lookup) for child in node[1:]]
    result = parts[0]
    for part in parts[1:]:
        result = (result & part) if kind == "and" else (result | part)
    return result
