"""Print the requirements of pyproject.toml, one per line, for `pip install -r`.

Usage: docker_requirements.py PYPROJECT [EXTRA ...] [--build-system]

The image installs dependencies before copying the source, so that editing
the code does not reinstall TensorFlow; this reads them from pyproject.toml
alone. scripts/ci_docker.sh uses the same list to fill the offline wheelhouse.
"""

import sys
import tomllib


def main(argv: list[str]) -> None:
    path, *extras = argv
    with open(path, "rb") as f:
        pyproject = tomllib.load(f)
    project = pyproject["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        if extra == "--build-system":
            requirements += pyproject["build-system"]["requires"]
        elif extra:
            requirements += project["optional-dependencies"][extra]
    print("\n".join(requirements))


if __name__ == "__main__":
    main(sys.argv[1:])
