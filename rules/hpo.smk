# hpo_config searches: grid and random trials are jobs of this graph (src/sandflow/plan/planner.py); this
# rule ranks them by the metric and writes <work_dir>/hpo/best.json, trials.csv and metric.png.
# bayes searches run these rules once per batch of trials (python -m sandflow.hpo_search).

if SANDFLOW.plan.search is not None:

    localrules:
        hpo_spec_record,
        hpo_summary,

    rule hpo_spec_record:
        output:
            SANDFLOW.hpo_spec_output(),
        log:
            f"{SANDFLOW.work_dir}/logs/hpo_spec_record/{{digest}}.log",
        conda:
            "../envs/sandflow.yaml"
        params:
            spec=SANDFLOW.hpo_spec,
        script:
            "../scripts/record_spec.py"

    rule hpo_summary:
        input:
            **SANDFLOW.hpo_inputs(),
        output:
            best=SANDFLOW.hpo_outputs()["best"],
            table=report(SANDFLOW.hpo_outputs()["table"], caption="../report/hpo_trials.rst", category="Search"),
            plot=report(SANDFLOW.hpo_outputs()["plot"], caption="../report/hpo_metric.rst", category="Search"),
        log:
            f"{SANDFLOW.work_dir}/logs/hpo_summary.log",
        conda:
            "../envs/sandflow.yaml"
        params:
            spec=SANDFLOW.hpo_spec,
        script:
            "../scripts/hpo_summary.py"
