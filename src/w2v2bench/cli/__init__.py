"""Every command: a thin shell that parses its arguments, calls one library function, prints and exits.

`python -m w2v2bench [TOOL] key=value ...` (or the console script `w2v2bench`): a first word that names a module
here runs that tool; none runs the benchmark (`bench.py`). A new tool is a new module here.
"""
