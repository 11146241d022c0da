"""User helper functions for the LLM inference tests, named as 'user_funcs:<function>' in configs."""


def build_two_questions(item, **kwargs):
    """A batch: the same question asked twice, the second time with a suffix from func_kwargs."""
    question = item[kwargs.get("query_key", "query")]
    return [[{"role": "user", "content": question}],
            [{"role": "user", "content": question + kwargs.get("suffix", "")}]]


def parse_turns(output, item, **kwargs):
    """The number of turns the test server reports at the start of its answer."""
    return int(output.split(" ", 1)[0])
