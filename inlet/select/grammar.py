"""Tokenizer and recursive-descent parser of selection expressions (grammar: the package doc).

Hand-written rather than generated: the grammar is a dozen lines, and a hand-written parser
knows, at each failure, what it expected and where, which is the error message users need.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rucio_inlet.catalog_query import OPS, And, Cmp, Node, Not, Op, Or, Value

from inlet.errors import InletError

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


#: Limits on a selection, so that hostile or runaway text gets a clear refusal, never a
#: RecursionError in the parser or a database refusing the SQL (SQLite's expression tree stops
#: near 1,000 terms). Generous for people: `between` covers ranges, and `in` lists of a few
#: hundred runs fit.
MAX_LENGTH = 20_000
MAX_COMPARISONS = 500
MAX_DEPTH = 50
#: Numbers are compared with 64-bit database columns; beyond this they overflow the driver.
MAX_NUMBER = 2**63 - 1
GRAMMAR_FIX = "see `inlet select -h` for the grammar and examples"


class SelectSyntaxError(InletError, ValueError):
    """A selection that does not parse; ``str()`` shows the text with a caret under the spot.

    As an :class:`InletError`, ``problem`` is one line: the message, the column, and the text
    near it with a ``^`` inserted at the column (the CLI prints that).
    """

    def __init__(self, message: str, text: str, pos: int, fix: str = GRAMMAR_FIX) -> None:
        self.message, self.text, self.pos = message, text, pos
        super().__init__(f"selection: {message} at column {pos + 1}{self.pointer()}", fix)

    def pointer(self) -> str:
        """The text near the column on one line, a caret inserted where it goes wrong:
        ``: raw:(run_number=^)``. Empty without a text (an error found past the parser)."""
        if not self.text.strip():
            return ""
        start = max(0, self.pos - 30)
        before = self.text[start : self.pos].replace("\n", " ")
        after = self.text[self.pos : self.pos + 30].replace("\n", " ")
        return f": {'...' if start else ''}{before}^{after}"

    def __str__(self) -> str:
        return f"{self.message} at column {self.pos + 1}\n  {self.text}\n  {' ' * self.pos}^"


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
        self.depth = 0  # open parentheses and `not`s around the current factor
        self.comparisons = 0

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
        if (self.tok.kind, self.tok.text.lower()) not in (("kw", "not"), ("punct", "(")):
            return self.comparison()
        # One level deeper: the parser recurses here, so this bound is what keeps it off
        # Python's recursion limit.
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SelectSyntaxError(
                f"more than {MAX_DEPTH} nested parentheses or 'not's",
                self.text,
                self.tok.pos,
                "flatten the expression: 'and'/'or' chains need no parentheses, 'not not' cancels out",
            )
        try:
            return self._nested()
        finally:
            self.depth -= 1

    def _nested(self) -> Node:
        if self.kw("not"):
            return Not(self.factor())
        open_tok = self.tok
        self.i += 1
        node = self.expr()
        if not self.punct(")"):
            if self.tok.kind == "end":
                raise SelectSyntaxError("unclosed '(' (add the matching ')')", self.text, open_tok.pos)
            raise self.error("')' or 'and'/'or'")
        return node

    def count(self, n: int, pos: int) -> None:
        self.comparisons += n
        if self.comparisons > MAX_COMPARISONS:
            raise SelectSyntaxError(
                f"more than {MAX_COMPARISONS} comparisons",
                self.text,
                pos,
                "select less at once: use 'between LOW and HIGH' for ranges, or split the selection",
            )

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
            self.count(len(values), key_tok.pos)
            cmps = tuple(Cmp(key, "=", v, key_tok.pos) for v in values)
            return cmps[0] if len(cmps) == 1 else Or(cmps)
        if self.kw("between"):
            low = self.value()
            if not self.kw("and"):
                raise self.error("'and' in 'between LOW and HIGH'")
            high = self.value()
            self.count(2, key_tok.pos)
            return And((Cmp(key, ">=", low, key_tok.pos), Cmp(key, "<=", high, key_tok.pos)))
        if self.tok.kind != "op":
            raise self.error(f"an operator ({', '.join(OPS)}), 'in' or 'between' after {key!r}")
        op_text = "=" if self.tok.text == "==" else self.tok.text
        assert op_text in OPS
        op: Op = op_text
        self.i += 1
        self.count(1, key_tok.pos)
        return Cmp(key, op, self.value(), key_tok.pos)

    def value(self) -> Value:
        tok = self.tok
        if tok.kind == "string":
            self.i += 1
            body = tok.text[1:-1]
            return re.sub(r"\\(.)", r"\1", body)
        if tok.kind == "number":
            self.i += 1
            return self.number(tok)
        if tok.kind == "kw" and tok.text.lower() in ("true", "false"):
            self.i += 1
            return tok.text.lower() == "true"
        if tok.kind == "name":
            self.i += 1
            return tok.text
        raise self.error("a value (a number, 'quoted text' or a bare word)")

    def number(self, tok: Token) -> int | float:
        """An int or a float within what a 64-bit column holds; checked before converting, so
        that neither a 5,000-digit integer (Python's int() refuses it) nor 1e999 (inf) gets through."""
        out_of_range = SelectSyntaxError(
            f"number {tok.text[:30]}{'...' if len(tok.text) > 30 else ''} is out of range",
            self.text,
            tok.pos,
            f"write a number between -{MAX_NUMBER} and {MAX_NUMBER}",
        )
        if re.fullmatch(r"[+-]?\d+", tok.text):
            if len(tok.text.lstrip("+-").lstrip("0")) > len(str(MAX_NUMBER)) or abs(int(tok.text)) > MAX_NUMBER:
                raise out_of_range
            return int(tok.text)
        number = float(tok.text)
        if not math.isfinite(number) or abs(number) > MAX_NUMBER:
            raise out_of_range
        return number


def parse_selection(text: str) -> Selection:
    """Parse a selection; raises :class:`SelectSyntaxError` with the column of the problem."""
    if not text.strip():
        raise SelectSyntaxError('empty selection; write e.g. "raw:run_number=5000" or "*:"', text, 0)
    if len(text) > MAX_LENGTH:
        raise SelectSyntaxError(
            f"the selection is {len(text)} characters long, more than {MAX_LENGTH}",
            text[:60],
            0,
            "select less at once: use 'between LOW and HIGH' for ranges, or split the selection",
        )
    return _Parser(text).selection()
