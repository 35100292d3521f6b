"""The tooling around the course, not part of its lessons: one command for all of it.

    course run      # every notebook headless (papermill), then the report
    course report   # rebuild a run folder's report
    course generate # student versions of the notebooks
    course grade    # grade what students hand in
    course challenge # run 09's challenge submissions and rank them
    course bench    # the input paths against the compute ceiling
    course site     # the course site, from the executed references
    course demo     # a trained model as a web demo

Modules: runner (and report) run the course; assignments makes and grades exercises (probes
holds their hidden checks); leaderboard grades the challenge; bench measures speed; site builds
the course site; demo serves a model.
"""
