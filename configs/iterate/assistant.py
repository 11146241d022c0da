"""The model behind the iterative prompt-optimization example: it improves prompts and grades with them.

Serve it with ``python -m sandflow.devtools.loopback_chat --port 8766 --grader configs/iterate/assistant.py:reply``.
A request whose system turn asks to improve a prompt gets the prompt back one step better
(configs/apo/grader.py grades better with it); any other request is graded by that grader.
The steps, as a prompt-writing model might take them:

* a prompt that checks nothing learns to check the final answer;
* one that checks the final answer learns to check each calculation instead;
* one that checks each calculation but explains itself learns to answer with ONLY a number;
* a prompt that does all of that comes back unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path

from sandflow.devtools.loopback_chat import load_answer

grade = load_answer(f"{Path(__file__).resolve().parents[1] / 'apo' / 'grader.py'}:grade")
Messages = list[dict[str, str]]


def reply(messages: Messages) -> str:
    system = " ".join(m["content"] for m in messages if m["role"] == "system")
    if "improve prompts" in system:
        return improve([m["content"] for m in messages if m["role"] == "user"][-1])
    return grade(messages)


def improve(prompt: str) -> str:
    lower = prompt.lower()
    if "each calculation" in lower:
        if "only a number" in lower:
            return prompt
        return f"{prompt} Return ONLY a number: 1 if every calculation is correct, 0 otherwise."
    if "final answer" in lower:
        return re.sub("the final answer", "each calculation", prompt, flags=re.IGNORECASE)
    return f"{prompt} Check whether the final answer is right."
