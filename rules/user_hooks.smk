# A user's own hooks (`hook: 'my_hooks:CountRows'`, src/sandflow/hooks/user_hooks.py): one rule for them all.
# Its jobs sit in jobs/<module>.<Class>/<key>/, so {user_hook} (a dotted name) never matches a registry hook's
# directory. Threads, resources and conda env come from each job's family and `resources:`
# (src/sandflow/run/resources.py); profiles set this rule's resources by its name, user_hook.


rule user_hook:
    input:
        SANDFLOW.jobs.inputs,
    output:
        SANDFLOW.jobs.output("{user_hook}"),
    log:
        SANDFLOW.jobs.log("{user_hook}"),
    benchmark:
        SANDFLOW.jobs.benchmark("{user_hook}")
    wildcard_constraints:
        user_hook=USER_HOOK_NAME,
    conda:
        JOB_RESOURCES.conda_env_of(USER_HOOK_RULE)
    container:
        JOB_RESOURCES.container_of(USER_HOOK_RULE)
    threads: JOB_RESOURCES.threads_of(USER_HOOK_RULE)
    resources:
        **JOB_RESOURCES.resources_of(USER_HOOK_RULE),
    params:
        spec=SANDFLOW.jobs.spec,
    script:
        "../scripts/run_job.py"
