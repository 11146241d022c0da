"""A deterministic stand-in for the grader model of the auto-prompt-optimization example.

Serve it with ``python -m sandflow.devtools.loopback_chat --port 8765 --grader configs/apo/grader.py:grade``.
It reads what ``build_messages_for_math_qa`` sends (the candidate prompt as the
system turn, ``Question: ...\\nAnswer: ...`` as the user turn) and grades the
GSM8K-style calculation annotations ``<<expr=value>>`` in the answer. How well
it grades depends on the prompt, so ranking the prompts finds something:

* a prompt asking to check **each** (or every) **calculation**: 1 if every
  annotation is arithmetically right, else 0 (it cannot see reasoning errors
  whose arithmetic is right);
* a prompt asking about the **final answer** only: checks the last annotation
  alone, so an error in an earlier step goes unnoticed;
* any other prompt: 0.5, whatever the answer.

A prompt demanding "ONLY a number" gets the bare score. Otherwise the grader,
like a chatty model, explains the mistakes it finds ("Score: 0. ... is 84, not
82.") -- text that the sandbox's ``parse_output`` keeps as it is, and that the
mse evaluator then counts as a format error; when it finds nothing wrong it
still answers with the bare score. An answer without annotations has nothing
wrong in it: score 1.

Expressions are evaluated exactly (fractions, through ``ast``; never ``eval``).
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
Messages = list[dict[str, str]]


def grade(messages: Messages) -> str:
    """The grader's reply to one chat request."""
    prompt = " ".join(m["content"] for m in messages if m["role"] == "system").lower()
    user_turn = [m["content"] for m in messages if m["role"] == "user"][-1]
    annotations = ANNOTATION.findall(user_turn)
    if "each calculation" in prompt or "every calculation" in prompt:
        checked = annotations
    elif "final answer" in prompt:
        checked = annotations[-1:]
    else:
        return "0.5"
    mistakes = [m for m in (mistake(expr, stated) for expr, stated in checked) if m]
    if not mistakes or "only a number" in prompt:
        return "0" if mistakes else "1"
    return f"Score: 0. {' '.join(mistakes)}"


def mistake(expr: str, stated: str) -> str:
    """'' when ``expr`` evaluates to ``stated``, else one sentence saying what is wrong."""
    try:
        value = evaluate(expr)
    except (ValueError, SyntaxError, ZeroDivisionError):
        return f"{expr.strip()} is not a calculation I can check."
    try:
        claimed = Fraction(stated.strip())
    except ValueError:
        return f"{stated.strip()} is not a number."
    return "" if value == claimed else f"{expr.strip()} is {format_number(value)}, not {stated.strip()}."


def evaluate(expr: str) -> Fraction:
    """The exact value of an arithmetic expression: numbers, + - * / %, parentheses, unary signs."""
    return _value(ast.parse(expr.strip(), mode="eval").body)


_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Mod: lambda a, b: a % b,
}


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(repr(node.value))  # from its decimal text: .1 is exactly 1/10
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_value(node.left), _value(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    raise ValueError(f"not arithmetic: {ast.dump(node)}")


def format_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"
