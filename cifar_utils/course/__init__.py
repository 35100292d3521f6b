"""Moved: the course's tooling is now the package `cifar_course`, with the command `course`.

`python -m cifar_utils.course COMMAND` still works for this release, and says where it went.
"""
