"""The query language of interests: a hard filter over title, abstract and authors. Pure.

    words and "quoted phrases" must all appear (AND, implicit or written);
    a OR b accepts either (OR binds tighter than AND: `x y OR z` is x AND (y OR z));
    ( ) group; -term, -"phrase", -(group) or NOT term exclude, wherever they stand;
    title:, abstract:, author: restrict a term to one field; reinforc* matches a prefix;
    =word and ="a phrase" match that exact form (no plural or inflection folding).

Words are case-insensitive and whole; each is folded to its stem, as search
engines fold them (notifier/terms.py), unless written with `=`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass

from notifier.errors import QueryError
from notifier.terms import stem, words

FIELDS = ("title", "abstract", "author")
# One limit on what a query may be, wherever it is accepted (CLI, web form, API,
# config): longer than any alert a person writes, short enough to parse at once.
MAX_QUERY_LENGTH = 500
MAX_NESTING = 20
_QUERY_TOKEN = re.compile(r'\s*(?:(\()|(\))|(-?=?)"([^"]*)("?)|([^\s()"]+))')


@dataclass(frozen=True, slots=True)
class Term:
    """A word, phrase or prefix, optionally restricted to one field."""

    text: str  # as the user wrote it, for reasons: word, "a phrase", =word, prefix*
    tokens: tuple[str, ...]  # casefolded words, as written
    field: str | None = None  # None: title or abstract
    prefix: bool = False
    exact: bool = False  # =word: this form only, no plural or inflection folding
    # What the index caches the term under: a str hashes once, a dataclass every time.
    # Folded terms are keyed by their stems, so "model" and "models" share one entry.
    key: str = dataclasses.field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        kind = "*" if self.prefix else "=" if self.exact or self.field == "author" else "~"
        forms = self.tokens if kind != "~" else tuple(stem(t) for t in self.tokens)
        object.__setattr__(self, "key", f"{self.field or ''}|{kind}|{' '.join(forms)}")

    @property
    def label(self) -> str:
        """Return the term as a reason quotes it: no quotes, no '='."""
        return self.text.removeprefix("=").strip('"')

    @property
    def folded(self) -> bool:
        """Return whether the term matches every inflection of its words."""
        return not (self.prefix or self.exact or self.field == "author")


@dataclass(frozen=True, slots=True)
class Node:
    """An AND or OR of terms and nodes."""

    op: str  # "and" | "or"
    children: tuple[Term | Node, ...]


Expr = Term | Node


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: what must match, and what excludes a paper wherever it appears."""

    text: str
    include: Expr | None  # None: only exclusions (next to a description)
    exclude: tuple[Expr, ...]
    positive: tuple[Term, ...] = ()  # the include's terms, in the order written

    def __post_init__(self) -> None:
        if self.include is not None and not self.positive:
            object.__setattr__(self, "positive", tuple(_terms(self.include)))

    def terms(self) -> tuple[Term, ...]:
        """Return the positive terms, in the order written."""
        return self.positive


def _terms(expr: Expr) -> Iterable[Term]:
    if isinstance(expr, Term):
        yield expr
    else:
        for child in expr.children:
            yield from _terms(child)


class _Parser:
    """Recursive descent over the query text, remembering positions for errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._lex(text)
        self.i = 0
        self.depth = 0
        self.excluded: list[Expr] = []

    def _lex(self, text: str) -> list[tuple[str, str, int]]:
        tokens: list[tuple[str, str, int]] = []
        pos, end = 0, len(text.rstrip())
        while pos < end:
            m = _QUERY_TOKEN.match(text, pos)
            assert m is not None
            pos = m.end()
            if m.group(1):
                tokens.append(("(", "(", m.start(1)))
            elif m.group(2):
                tokens.append((")", ")", m.start(2)))
            elif m.group(4) is not None:
                marks = m.group(3)
                start = m.start(4) - 1 - len(marks)
                if not m.group(5):
                    raise QueryError(text, "unclosed quote", start + len(marks))
                if not m.group(4).strip():
                    raise QueryError(text, "empty phrase", start + len(marks))
                kind = "-phrase" if marks.startswith("-") else "phrase"
                # A leading "=" in a token's value asks for the exact form (see _make).
                tokens.append((kind, "=" * marks.endswith("=") + m.group(4), start))
            else:
                word, start = m.group(6), m.start(6)
                if word in ("OR", "AND", "NOT"):
                    tokens.append((word, word, start))
                elif word == "-" and text.startswith("(", pos):
                    tokens.append(("-", "-", start))  # -(a OR b) excludes the group
                elif word == "-":
                    raise QueryError(text, "'-' must be followed by a word to exclude", start)
                elif word.startswith("-"):
                    tokens.append(("-", "-", start))
                    tokens.append(("word", word[1:], start + 1))
                else:
                    tokens.append(("word", word, start))
        return tokens

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> Query:
        if not self.tokens:
            raise QueryError(self.text, "the query needs at least one word or phrase to look for")
        include = self.conjunction(top=True)
        if (token := self.peek()) is not None:
            raise QueryError(self.text, "unmatched ')'", token[2])
        return Query(self.text, include, tuple(self.excluded))

    def conjunction(self, top: bool = False) -> Expr | None:
        parts: list[Expr] = []
        while (token := self.peek()) is not None and token[0] != ")":
            if token[0] == "AND":
                if not parts and not self.excluded_since_start(parts):
                    raise QueryError(self.text, "AND needs a term on each side", token[2])
                self.i += 1
                nxt = self.peek()
                if nxt is None or nxt[0] in (")", "AND", "OR"):
                    raise QueryError(self.text, "AND needs a term on each side", token[2])
                continue
            if token[0] == "OR":
                raise QueryError(self.text, "OR needs a term on each side", token[2])
            part = self.disjunction()
            if part is not None:
                parts.append(part)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else Node("and", tuple(parts))

    def excluded_since_start(self, parts: list[Expr]) -> bool:
        return bool(self.excluded)

    def disjunction(self) -> Expr | None:
        first = self.unary()
        options = [first] if first is not None else []
        while (token := self.peek()) is not None and token[0] == "OR":
            if first is None:
                raise QueryError(self.text, "an excluded term cannot be part of OR", token[2])
            self.i += 1
            nxt = self.peek()
            if nxt is None or nxt[0] in (")", "OR", "AND"):
                raise QueryError(self.text, "OR needs a term on each side", token[2])
            if nxt[0] in ("-", "-phrase", "NOT"):
                raise QueryError(self.text, "an excluded term cannot be part of OR", nxt[2])
            option = self.unary()
            assert option is not None
            options.append(option)
        if not options:
            return None
        return options[0] if len(options) == 1 else Node("or", tuple(options))

    def unary(self) -> Expr | None:
        token = self.peek()
        assert token is not None
        if token[0] in ("-", "NOT"):
            # A run of negations excludes what follows; read as a loop, not by
            # recursion, so a thousand NOTs are an ordinary query.
            while (nxt := self.peek()) is not None and nxt[0] in ("-", "NOT"):
                token = nxt
                self.i += 1
            if nxt is None or nxt[0] in (")", "OR", "AND"):
                raise QueryError(self.text, "'-' must be followed by a word to exclude", token[2])
            if nxt[0] == "-phrase":
                self.i += 1
                self.excluded.append(self.term(nxt[1], nxt[2], phrase=True))
            else:
                self.excluded.append(self.atom())
            return None
        if token[0] == "-phrase":
            self.i += 1
            self.excluded.append(self.term(token[1], token[2], phrase=True))
            return None
        return self.atom()

    def atom(self) -> Expr:
        token = self.peek()
        assert token is not None
        kind, value, start = token
        self.i += 1
        if kind == "(":
            # Each level is a few Python frames: refuse what no person writes
            # before it can exhaust the stack (a 500-character web field can).
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise QueryError(
                    self.text, f"parentheses nested more than {MAX_NESTING} deep", start
                )
            inner = self.conjunction()
            self.depth -= 1
            closing = self.peek()
            if closing is None or closing[0] != ")":
                raise QueryError(self.text, "unclosed '('", start)
            self.i += 1
            if inner is None:
                raise QueryError(self.text, "empty parentheses", start)
            return inner
        if kind == ")":
            raise QueryError(self.text, "unmatched ')'", start)
        if kind == "phrase":
            return self.term(value, start, phrase=True)
        return self.term(value, start, phrase=False)

    def term(self, value: str, start: int, phrase: bool) -> Term:
        field_name = None
        if not phrase and ":" in value:
            head, _, rest = value.partition(":")
            if head.lower() in FIELDS:
                field_name = head.lower()
                if rest in ("", "="):  # title:"a phrase", title:="a phrase"
                    nxt = self.peek()
                    if nxt is None or nxt[0] != "phrase":
                        raise QueryError(self.text, f"'{head}:' needs a word or phrase", start)
                    self.i += 1
                    return self._make(rest + nxt[1], nxt[2], field_name, phrase=True)
                value = rest
        return self._make(value, start, field_name, phrase)

    def _make(self, value: str, start: int, field_name: str | None, phrase: bool) -> Term:
        exact = value.startswith("=")
        value = value.removeprefix("=")
        prefix = not phrase and value.endswith("*")
        stem = value.rstrip("*") if prefix else value
        if "*" in stem:
            raise QueryError(self.text, "'*' is only allowed at the end of a word", start)
        tokens = tuple(words(stem))
        if not tokens:
            raise QueryError(self.text, f"{value!r} has no letters or digits to look for", start)
        if prefix and (len(tokens) != 1 or len(tokens[0]) < 3):
            raise QueryError(self.text, "a wildcard needs at least 3 letters before '*'", start)
        if exact and prefix:
            raise QueryError(self.text, "'=' asks for one exact form; it cannot end in '*'", start)
        text = ("=" if exact else "") + (value if not phrase else f'"{value}"')
        return Term(text, tokens, field_name, prefix, exact)


def parse_query(text: str) -> Query:
    """Parse query text, or raise QueryError pointing at the position at fault."""
    if len(text) > MAX_QUERY_LENGTH:  # before reading it, whatever it holds
        raise QueryError(
            text[:40] + "…",
            f"{len(text)} characters is too long; a query may have {MAX_QUERY_LENGTH}",
        )
    return _Parser(text).parse()
