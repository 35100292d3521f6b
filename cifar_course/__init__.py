"""The tooling around the course, not part of its lessons: one command for all of it.

    course run      # every notebook headless (papermill), then the report
    course report   # rebuild a run folder's report
    course generate # student versions of the notebooks
    course grade    # grade what students hand in
    course challenge # run 09's challenge submissions and rank them
    course bench    # the input paths against the compute ceiling
    course site     # the course site, from the executed references
    course demo     # a trained model as a web demo

Modules: runner (and report) run the course; student_versions makes the handouts; assignments
grades them (own_work refuses the library where an exercise is to be written, probes asks the
hidden questions, gradebook writes the grades); leaderboard (with handout) grades the challenge;
sandbox (with cgroup) is where every submission runs; tables renders what they write; bench
measures speed; site builds the course site; demo serves a model.
"""
