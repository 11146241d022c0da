# Execute: process data, manipulate data pools, train and run models.
# One generic rule per hook of this stage in src/sandflow/hooks/registry.py, named there (hook.rule):
# {key} selects the job, its spec arrives as one params value. Threads, resources and conda env come
# from the job (src/sandflow/run/resources.py); the env with --sdm conda, the image with --sdm apptainer,
# else every job runs in the project's venv.

for hook in hooks_of_stage("execute"):

    rule:
        name:
            hook.rule
        input:
            SANDFLOW.jobs.inputs,
        output:
            SANDFLOW.jobs.output(hook.name),
        log:
            SANDFLOW.jobs.log(hook.name),
        benchmark:
            SANDFLOW.jobs.benchmark(hook.name)
        conda:
            JOB_RESOURCES.conda_env_of(hook.name)
        container:
            JOB_RESOURCES.container_of(hook.name)
        threads: JOB_RESOURCES.threads_of(hook.name)
        resources:
            **JOB_RESOURCES.resources_of(hook.name),
        params:
            spec=SANDFLOW.jobs.spec,
        script:
            "../scripts/run_job.py"
