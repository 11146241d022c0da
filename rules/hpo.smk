# hpo_config searches: grid and random trials are jobs of this graph (src/sandflow/plan/planner.py); this
# rule ranks them by the metric and writes <work_dir>/hpo/best.json, trials.csv and metric.png.
# bayes searches run these rules once per batch of trials (python -m sandflow.hpo_search).

if SANDFLOW.plan.search is not None:

    localrules:
        hpo_spec_record,
        hpo_summary,

    rule hpo_spec_record:
        output:
            SANDFLOW.hpo.spec_output(),
        log:
            SANDFLOW.hpo.spec_log(),
        conda:
            "../envs/sandflow.yaml"
        params:
            spec=SANDFLOW.hpo.spec,
        script:
            "../scripts/record_spec.py"

    rule hpo_summary:
        input:
            **SANDFLOW.hpo.inputs(),
        output:
            best=SANDFLOW.hpo.outputs()["best"],
            table=report(SANDFLOW.hpo.outputs()["table"], caption="../report/hpo_trials.rst", category="Search"),
            plot=report(SANDFLOW.hpo.outputs()["plot"], caption="../report/hpo_metric.rst", category="Search"),
        log:
            SANDFLOW.hpo.summary_log(),
        conda:
            "../envs/sandflow.yaml"
        params:
            spec=SANDFLOW.hpo.spec,
        script:
            "../scripts/hpo_summary.py"
