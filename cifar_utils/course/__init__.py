"""The tooling around the course, not part of its lessons: one command for all of it.

    python -m cifar_utils.course run      # every notebook headless (papermill), then the report
    python -m cifar_utils.course report   # rebuild a run folder's report
    python -m cifar_utils.course generate # student versions of the notebooks
    python -m cifar_utils.course grade    # grade what students hand in
    python -m cifar_utils.course challenge # run 09's challenge submissions and rank them
    python -m cifar_utils.course bench    # the input paths against the compute ceiling
    python -m cifar_utils.course site     # the course site, from the executed references
    python -m cifar_utils.course demo     # a trained model as a web demo

Modules: runner (and report) run the course; assignments makes and grades exercises (probes
holds their hidden checks); leaderboard grades the challenge; bench measures speed; site builds
the course site; demo serves a model.
"""
