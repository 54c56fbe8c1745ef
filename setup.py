"""The package list and its data files, found rather than kept by hand (everything else is in pyproject.toml).

Every folder under src/w2v2bench is a package (the data folders under assets/ too, as setuptools wants for
data it installs); the Hydra configs at the top of the repository (conf/) install as w2v2bench.conf, each
config group folder a package of YAML files.
"""

from setuptools import find_namespace_packages, setup

CONF = ["w2v2bench.conf", *(f"w2v2bench.conf.{name}" for name in find_namespace_packages("conf"))]
setup(
    packages=[*find_namespace_packages("src", include=["w2v2bench", "w2v2bench.*"]), *CONF],
    # one place for the data files too: a package-data table in pyproject.toml would replace this one
    package_data={"w2v2bench": ["assets/**/*"], **{name: ["*.yaml"] for name in CONF}},
)
