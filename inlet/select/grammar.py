"""Tokenizer and recursive-descent parser of selection expressions (grammar: the package doc).

Hand-written rather than generated: the grammar is a dozen lines, and a hand-written parser
knows, at each failure, what it expected and where, which is the error message users need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from inlet.catalog.query import OPS, And, Cmp, Node, Not, Op, Or, Value

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?(?![\w.]))
  | (?P<op>==|!=|<=|>=|=|<|>)
  | (?P<punct>[(),:])
  | (?P<star>\*)
  | (?P<name>[A-Za-z_][\w.\-*]*)
  | (?P<unterminated>['"])
    """,
    re.VERBOSE,
)
KEYWORDS = {"and", "or", "not", "in", "between", "true", "false"}


class SelectSyntaxError(ValueError):
    """A selection that does not parse; ``str()`` shows the text with a caret under the spot."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        self.message, self.text, self.pos = message, text, pos
        super().__init__(f"{message} at column {pos + 1}\n  {text}\n  {' ' * pos}^")


@dataclass(frozen=True)
class Token:
    kind: str  # string number op punct star name kw end
    text: str
    pos: int


@dataclass(frozen=True)
class Selection:
    tier: str | None  # None: every scope
    condition: Node | None  # None: everything in the tier


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SelectSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
        kind = m.lastgroup or ""
        if kind == "unterminated":
            raise SelectSyntaxError("unterminated string (add the closing quote)", text, pos)
        if kind != "ws":
            value = m.group()
            if kind == "name" and value.lower() in KEYWORDS:
                kind = "kw"
            tokens.append(Token(kind, value, pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, expected: str, tok: Token | None = None) -> SelectSyntaxError:
        tok = tok or self.tok
        found = "the end of the expression" if tok.kind == "end" else repr(tok.text)
        return SelectSyntaxError(f"expected {expected}, found {found}", self.text, tok.pos)

    def kw(self, word: str) -> bool:
        if self.tok.kind == "kw" and self.tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def punct(self, char: str) -> bool:
        if self.tok.kind == "punct" and self.tok.text == char:
            self.i += 1
            return True
        return False

    # selection := [tier ":"] [expr]
    def selection(self) -> Selection:
        tier: str | None = None
        nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else self.tok
        if self.tok.kind in ("name", "star") and nxt.kind == "punct" and nxt.text == ":":
            tier = None if self.tok.text == "*" else self.tok.text
            self.i += 2
        if self.tok.kind == "end":
            return Selection(tier, None)
        node = self.expr()
        if self.tok.kind != "end":
            raise self.error("'and', 'or' or the end of the expression")
        return Selection(tier, node)

    def expr(self) -> Node:
        items = [self.term()]
        while self.kw("or"):
            items.append(self.term())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def term(self) -> Node:
        items = [self.factor()]
        while self.kw("and"):
            items.append(self.factor())
        return items[0] if len(items) == 1 else And(tuple(items))

    def factor(self) -> Node:
        if self.kw("not"):
            return Not(self.factor())
        if self.tok.kind == "punct" and self.tok.text == "(":
            open_tok = self.tok
            self.i += 1
            node = self.expr()
            if not self.punct(")"):
                if self.tok.kind == "end":
                    raise SelectSyntaxError("unclosed '(' (add the matching ')')", self.text, open_tok.pos)
                raise self.error("')' or 'and'/'or'")
            return node
        return self.comparison()

    def comparison(self) -> Node:
        key_tok = self.tok
        if key_tok.kind != "name":
            raise self.error("a metadata key (e.g. run_number), 'not' or '('")
        key = key_tok.text
        if "*" in key:
            raise self.error("a metadata key without '*'", key_tok)
        self.i += 1
        if self.kw("in"):
            if not self.punct("("):
                raise self.error("'(' after 'in'")
            values = [self.value()]
            while self.punct(","):
                values.append(self.value())
            if not self.punct(")"):
                raise self.error("',' or ')' in the 'in' list")
            cmps = tuple(Cmp(key, "=", v, key_tok.pos) for v in values)
            return cmps[0] if len(cmps) == 1 else Or(cmps)
        if self.kw("between"):
            low = self.value()
            if not self.kw("and"):
                raise self.error("'and' in 'between LOW and HIGH'")
            high = self.value()
            return And((Cmp(key, ">=", low, key_tok.pos), Cmp(key, "<=", high, key_tok.pos)))
        if self.tok.kind != "op":
            raise self.error(f"an operator ({', '.join(OPS)}), 'in' or 'between' after {key!r}")
        op_text = "=" if self.tok.text == "==" else self.tok.text
        assert op_text in OPS
        op: Op = op_text
        self.i += 1
        return Cmp(key, op, self.value(), key_tok.pos)

    def value(self) -> Value:
        tok = self.tok
        if tok.kind == "string":
            self.i += 1
            body = tok.text[1:-1]
            return re.sub(r"\\(.)", r"\1", body)
        if tok.kind == "number":
            self.i += 1
            number = float(tok.text)
            if re.fullmatch(r"[+-]?\d+", tok.text):
                return int(tok.text)
            return number
        if tok.kind == "kw" and tok.text.lower() in ("true", "false"):
            self.i += 1
            return tok.text.lower() == "true"
        if tok.kind == "name":
            self.i += 1
            return tok.text
        raise self.error("a value (a number, 'quoted text' or a bare word)")


def parse_selection(text: str) -> Selection:
    """Parse a selection; raises :class:`SelectSyntaxError` with the column of the problem."""
    if not text.strip():
        raise SelectSyntaxError('empty selection; write e.g. "raw:run_number=5000" or "*:"', text, 0)
    return _Parser(text).selection()
