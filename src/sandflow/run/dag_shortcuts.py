"""Shortcuts through what Snakemake repeats for every job of its DAG, each the same result with less work.

Snakemake is pinned (requirements.txt, CHECKED_WITH); each shortcut replaces one of its internals only with that
version and where the internal is as this module knows it, and is a no-op otherwise (Snakemake keeps its own
way). Per job, in a ``snakemake -n`` of 20,000 distinct jobs (benchmarks/RESULTS.md, "Snakemake's work per
job"), Snakemake:

* reads the parameters of each function it applies (input and params functions, its own ``Resource.evaluate``
  and default-resource evaluators) with ``inspect.signature``, two or three times per call:
  ``read_signatures_once`` remembers them per function;
* applies each resource like an input function, also one that is a plain value (``threads``, ``mem_mb``):
  ``resource_values_as_they_are`` hands those back directly;
* evaluates the default resource ``tmpdir``, the expression ``system_tmpdir``, by ``eval`` in a namespace of
  Snakemake's helper functions built for each job: ``default_tmpdir_without_eval`` gives its value directly;
* then expands each job's resources, the same for every job of a rule whose resources are plain values and
  the default tmpdir: ``plain_resources_once_per_rule`` expands them once per rule;
* finds the rules that make each input file by matching it against every output pattern, again for a file
  whose job it has made already: ``match_producers_once_per_file`` remembers the match per file;
* expands each job's log and benchmark paths twice (once to check them, once to keep them):
  ``check_logs_once`` keeps what the check expanded;
* expands each job's params only to hand them to the conda directive, which is a plain path in these rules
  and so takes none: ``conda_env_without_params`` leaves params to whoever needs them (the job's script);
* expands the group of a job whose rule has none on each of three calls: ``group_less_rules_without_expansion``;
* asks whether each output is write-protected in an asyncio task of its own: ``protected_outputs_checked_in_turn``;
* looks, when each job finishes (also in a dry run), for temp files among the outputs of the job and of each job it
  depends on (the hpo summary's and the assembly's 30,000), also when no rule has a temp output:
  ``temp_files_sought_only_where_rules_have_them``.

Those through its file objects (flags, formatting, the output path check) are in run/file_shortcuts.py.
"""

from __future__ import annotations

import inspect
import tempfile
import types
from collections.abc import Callable, Mapping
from typing import Any

_MISSING = object()

# The Snakemake these shortcuts were checked against (requirements.txt pins it); any other keeps its own way.
CHECKED_WITH = "9.27.1"

# Where read_signatures_once keeps a function's parameters, on the function.
PARAMS = "_sandflow_params"
BOUND_PARAMS = "_sandflow_bound_params"

# Where plain_resources_once_per_rule keeps a rule's expanded resources, on the rule.
EXPANDED_RESOURCES = "_sandflow_expanded_resources"

# Where match_producers_once_per_file keeps the rules matching each file, on Snakemake's output index.
MATCHED_PRODUCERS = "_sandflow_matched_producers"

# Where temp_files_sought_only_where_rules_have_them keeps whether any rule has a temp output, on the DAG.
TEMP_OUTPUTS = "_sandflow_temp_outputs"

# Marks what this module installed, so that a second Snakefile parse in one process does not wrap it again.
INSTALLED = "_sandflow_shortcut"


def installed(function: Callable[..., Any]) -> Callable[..., Any]:
    setattr(function, INSTALLED, True)
    return function


def replaceable(owner: type, name: str, parameters: list[str]) -> types.FunctionType | None:
    """owner's own function ``name`` as a shortcut knows it: a plain function, not installed here, with these
    parameters; None otherwise (the shortcut then stays out)."""
    original = inspect.getattr_static(owner, name, None)
    if not isinstance(original, types.FunctionType) or getattr(original, INSTALLED, False):
        return None
    return original if list(inspect.signature(original).parameters) == parameters else None


def read_signatures_once() -> None:
    """Snakemake's ``get_function_params(func)``, remembered on each plain function (for a bound method, on its
    function, apart: a bound method's lacks the first parameter).

    The same mapping as ``inspect.signature(func).parameters``; a function's signature does not change after
    the rules are read (Snakemake's own override, the ``_overwrite_params`` attribute, is still read first).
    """
    from snakemake import common, jobs, rules

    original = getattr(common, "get_function_params", None)
    overwritten = getattr(common, "FUNC_OVERWRITE_PARAMS_ATTR", None)
    if original is None or overwritten is None or getattr(original, INSTALLED, False):
        return

    @installed
    def get_function_params(func: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
        if type(func) is types.FunctionType:
            attributes, remembered_as = func.__dict__, PARAMS
        elif type(func) is types.MethodType and type(func.__func__) is types.FunctionType:
            attributes, remembered_as = func.__func__.__dict__, BOUND_PARAMS  # a bound method reads its function's
        else:
            return original(func)
        if overwritten in attributes:
            return attributes[overwritten]
        params = attributes.get(remembered_as)
        if params is None:
            params = attributes[remembered_as] = original(func)
        return params

    for module in (common, rules, jobs):  # its own module's and those that imported it by name
        if getattr(module, "get_function_params", None) is original:
            module.get_function_params = get_function_params


def default_tmpdir_without_eval() -> None:
    """The value of Snakemake's default ``tmpdir`` expression, ``system_tmpdir``, without evaluating it."""
    from snakemake.resources import Resource, Resources

    expression = getattr(Resources, "DEFAULTS", {}).get("bare", {}).get("tmpdir")
    original = inspect.getattr_static(Resource, "cli_evaluator", None)
    if expression != "system_tmpdir" or not isinstance(original, staticmethod):
        return
    evaluate = original.__func__
    if getattr(evaluate, INSTALLED, False):
        return

    @installed
    def cli_evaluator(name: str, val: str, **context: Any) -> Any:
        # Snakemake evaluates the expression in a namespace where system_tmpdir is tempfile.gettempdir().
        return tempfile.gettempdir() if val == expression else evaluate(name, val, **context)

    Resource.cli_evaluator = staticmethod(cli_evaluator)


def resource_values_as_they_are() -> None:
    """``Rule.apply_input_function`` hands back a resource that is a value (``threads: 1``, ``mem_mb=4096``)
    as it is: Snakemake applies every resource like an input function (the job's wildcards wrapped anew, the
    evaluate method's parameters read), and a value's evaluate gives the value itself."""
    from snakemake.resources import Resource
    from snakemake.rules import Rule

    original = inspect.getattr_static(Rule, "apply_input_function", None)
    evaluate = inspect.getattr_static(Resource, "evaluate", None)
    if not isinstance(original, types.FunctionType) or getattr(original, INSTALLED, False):
        return
    if not isinstance(evaluate, types.FunctionType) or not callable(getattr(Resource, "is_evaluable", None)):
        return

    @installed
    def apply_input_function(self: Any, func: Any, wildcards: Any, *args: Any, **kwargs: Any) -> Any:
        if type(func) is types.MethodType and func.__func__ is evaluate and not func.__self__.is_evaluable():
            return func.__self__, False  # (value, incomplete), as Snakemake returns it
        return original(self, func, wildcards, *args, **kwargs)

    Rule.apply_input_function = apply_input_function


def plain_resources_once_per_rule() -> None:
    """``Rule.expand_resources`` once per rule (and attempt, constraints, resources left unevaluated) when every
    resource of the rule is a plain value or the default ``tmpdir``, whose value ``default_tmpdir_without_eval``
    makes the same for every job: each job then gets its own copy of the rule's, as Snakemake's job may update
    it in place."""
    from snakemake.iocontainers import ResourceList
    from snakemake.resources import Resource
    from snakemake.rules import Rule

    original = inspect.getattr_static(Rule, "expand_resources", None)
    tmpdir_evaluator = inspect.getattr_static(Resource, "cli_evaluator", None)
    if not isinstance(original, types.FunctionType) or getattr(original, INSTALLED, False):
        return
    if not isinstance(tmpdir_evaluator, staticmethod) or not getattr(tmpdir_evaluator.__func__, INSTALLED, False):
        return  # the default tmpdir is evaluated per job
    probe = ResourceList(fromdict={"mem_mb": 1}).__dict__  # what copy_of copies: the names, as attributes too
    if set(probe) - {"_names", "_allowed_overrides", "index", "sort", "mem_mb"}:
        return

    def copy_of(resources: Any) -> Any:
        # A ResourceList with its own names, as one built from the same mapping has, without building the names
        # one by one again (the values, numbers and strings, are shared: Snakemake replaces a value, never alters it).
        copy = ResourceList.__new__(ResourceList)
        copy.extend(resources)
        copy.__dict__.update(resources.__dict__)
        copy._names = dict(resources._names)
        copy._allowed_overrides = list(resources._allowed_overrides)
        return copy

    def same_for_every_job(rule: Any) -> bool:
        return rule.resources is not None and all(
            not resource.is_evaluable() or (resource.name == "tmpdir" and resource.raw == "system_tmpdir")
            for resource in rule.resources.values()
        )

    @installed
    def expand_resources(self: Any, wildcards: Any, input: Any, attempt: Any, skip_evaluation: Any = None) -> Any:
        if not same_for_every_job(self):
            return original(self, wildcards, input, attempt, skip_evaluation=skip_evaluation)
        workflow = self.workflow
        key = (
            attempt,
            frozenset(skip_evaluation or ()),
            workflow.resource_settings.max_threads,
            tuple(  # the constraints (--resources), as the expansion reads them
                (name, limit.value if isinstance(limit, Resource) else limit)
                for name, limit in workflow.global_resources.items()
            ),
        )
        expanded = self.__dict__.setdefault(EXPANDED_RESOURCES, {})
        if key not in expanded:
            expanded[key] = original(self, wildcards, input, attempt, skip_evaluation=skip_evaluation)
        return copy_of(expanded[key])

    Rule.expand_resources = expand_resources


def match_producers_once_per_file() -> None:
    """``OutputIndex.match_producers(file)`` (the rules whose output patterns match a file) once per file and
    index: the rules are fixed once the Snakefile is read, and the DAG asks again for every input that names a
    job made already (the hpo summary's and the assembly's, a third of the lookups and more)."""
    from snakemake.output_index import OutputIndex

    original = inspect.getattr_static(OutputIndex, "match_producers", None)
    if not isinstance(original, types.FunctionType) or getattr(original, INSTALLED, False):
        return

    @installed
    def match_producers(self: Any, targetfile: str) -> set[Any]:
        matched = self.__dict__.setdefault(MATCHED_PRODUCERS, {})  # by the file's path (Snakemake's files hash so)
        if targetfile not in matched:
            matched[targetfile] = frozenset(original(self, targetfile))
        return set(matched[targetfile])

    OutputIndex.match_producers = match_producers


def check_logs_once() -> None:
    """``Job.is_valid`` (Snakemake's check that a job's benchmark and log paths expand, also in a dry run)
    through the job's own cached paths: expanded once, raising the same errors as before."""
    from snakemake.jobs import Job

    original = inspect.getattr_static(Job, "is_valid", None)
    cached = [inspect.getattr_static(Job, name, None) for name in ("benchmark", "log")]
    if not callable(original) or getattr(original, INSTALLED, False):
        return
    if not all(isinstance(path, property) for path in cached):
        return

    @installed
    def is_valid(self: Any) -> None:
        self.benchmark  # noqa: B018 (the properties expand, check and keep the paths)
        self.log  # noqa: B018

    Job.is_valid = is_valid


def conda_env_without_params() -> None:
    """``Job.conda_env_spec`` without the job's params when its rule's conda directive is no function: Snakemake
    passes them (expanding them) to ``Rule.expand_conda_env``, which reads them only to call such a function."""
    from snakemake.jobs import Job

    original = inspect.getattr_static(Job, "conda_env_spec", None)
    if not isinstance(original, property) or original.fget is None or getattr(original.fget, INSTALLED, False):
        return
    with_params = original.fget

    @installed
    def conda_env_spec(self: Any) -> Any:
        directive = getattr(self.rule, "conda_env", _MISSING)
        if directive is _MISSING or callable(directive):
            return with_params(self)
        if self._conda_env_spec is None:
            self._conda_env_spec = self.rule.expand_conda_env(self.wildcards_dict)
        return self._conda_env_spec

    Job.conda_env_spec = property(conda_env_spec)


def group_less_rules_without_expansion() -> None:
    """``Job.group``, asked about three times per job, expands the rule's group (``Rule.expand_group``) until it has
    one: for a rule without a group it gets None, keeps nothing and expands again on the next call. None directly
    when the rule's group is None, which is what that expansion gives for any wildcards."""
    from snakemake.jobs import Job
    from snakemake.rules import Rule

    original = inspect.getattr_static(Job, "group", None)
    if not isinstance(original, property) or original.fget is None or getattr(original.fget, INSTALLED, False):
        return
    if not isinstance(inspect.getattr_static(Rule, "group", None), property):
        return
    with_expansion = original.fget

    @installed
    def group(self: Any) -> Any:
        if self._group is None and self.rule.group is None:
            return None
        return with_expansion(self)

    Job.group = property(group, original.fset)


def protected_outputs_checked_in_turn() -> None:
    """``Job.check_protected_output`` asks whether each output is write-protected (a look at the local file) in an
    asyncio task of its own, a task group per job: the same questions in turn, and Snakemake's own check where one
    of them raises (it raises its errors in an exception group)."""
    from snakemake import jobs

    original = inspect.getattr_static(jobs.Job, "check_protected_output", None)
    protected_error = getattr(jobs, "ProtectedOutputException", None)
    if not inspect.iscoroutinefunction(original) or getattr(original, INSTALLED, False) or protected_error is None:
        return

    @installed
    async def check_protected_output(self: Any) -> None:
        try:
            protected = [f for f in self.output if await f.protected()]
        except Exception:
            return await original(self)
        if protected:
            raise protected_error(self, protected)

    jobs.Job.check_protected_output = check_protected_output


def temp_files_sought_only_where_rules_have_them() -> None:
    """``DAG.handle_temp(job)`` (remove the temp files no job needs any more, or say it would in a dry run) logs its
    debug message and returns when no rule of the workflow has a temp output: a job's outputs are its rule's patterns
    filled, with their flags (``--all-temp`` flags the patterns too), so none of them is temp and Snakemake's own
    would find nothing to remove."""
    from snakemake import dag

    original = inspect.getattr_static(dag.DAG, "handle_temp", None)
    is_flagged = getattr(dag, "is_flagged", None)
    if not inspect.iscoroutinefunction(original) or getattr(original, INSTALLED, False) or is_flagged is None:
        return
    logger = getattr(dag, "logger", None)
    if logger is None:
        return

    def any_temp_output(workflow: Any) -> bool:
        return any(is_flagged(pattern, "temp") for rule in workflow.rules for pattern in rule.output)

    @installed
    async def handle_temp(self: Any, job: Any) -> None:
        if self.workflow.storage_settings.notemp or job.is_group():
            return await original(self, job)
        rules_with_temp = self.__dict__.get(TEMP_OUTPUTS)
        if rules_with_temp is None:  # the rules are all read before a DAG is built
            rules_with_temp = self.__dict__[TEMP_OUTPUTS] = any_temp_output(self.workflow)
        if rules_with_temp:
            return await original(self, job)
        logger.debug(f"Handle temp files for job {job}")  # as Snakemake's own does first

    handle_temp.__wrapped__ = original  # type: ignore[attr-defined]
    dag.DAG.handle_temp = handle_temp


def checked_snakemake() -> bool:
    """Whether the running Snakemake is the one these shortcuts were checked against (each module's installer asks)."""
    import snakemake

    return getattr(snakemake, "__version__", None) == CHECKED_WITH


def take_dag_shortcuts() -> None:
    """All of the above, in the process that builds Snakemake's DAG (after its modules are imported)."""
    if not checked_snakemake():
        return
    read_signatures_once()
    resource_values_as_they_are()
    default_tmpdir_without_eval()
    plain_resources_once_per_rule()
    match_producers_once_per_file()
    check_logs_once()
    conda_env_without_params()
    group_less_rules_without_expansion()
    protected_outputs_checked_in_turn()
    temp_files_sought_only_where_rules_have_them()
