"""Re-fetch the vendored GraphiQL files from the npm registry: `python -m server.graphiql.vendor`.

The GraphiQL page (server/graphiql/page.py) loads nothing from the internet: its scripts and
styles are files in this package, copied out of the npm packages pinned in `PINNED` below.
This script makes that copy reproducible: it runs `npm pack` for each pinned package (npm
checks each tarball against the registry's integrity hash), extracts the listed files into
static/vendor/ along with each package's licence, and prints the table for
static/README.md. To upgrade, change a version here, run it, read the diff, update the
README's table and run tests/api/edge/test_graphiql_browser.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

VENDOR = Path(__file__).parent / "static" / "vendor"
# Shipped inside gigql's own (MIT) wheel: anything else is a decision, not an upgrade.
ALLOWED_LICENCES = {"MIT"}


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: dict[str, str]  # path inside the tarball -> file name in static/vendor/

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def licence_file(self) -> str:
        return f"{self.name.replace('@', '').replace('/', '-')}.LICENSE.txt"


# GraphiQL 4 is the last major with a self-contained (UMD) build that a plain page can
# load without a bundler or an import map pointing at a CDN; React 18 the last with UMD
# builds (React 19 dropped them). graphql-ws comes bundled inside graphiql.min.js.
PINNED = (
    Package(
        "react",
        "18.3.1",
        {"package/umd/react.production.min.js": "react.production.min.js"},
    ),
    Package(
        "react-dom",
        "18.3.1",
        {"package/umd/react-dom.production.min.js": "react-dom.production.min.js"},
    ),
    Package(
        "graphiql",
        "4.1.2",
        {
            "package/graphiql.min.js": "graphiql.min.js",
            "package/graphiql.min.css": "graphiql.min.css",
        },
    ),
    Package(
        "@graphiql/plugin-explorer",
        "4.0.6",
        {
            "package/dist/index.umd.js": "plugin-explorer.umd.js",
            "package/dist/style.css": "plugin-explorer.css",
        },
    ),
)


def fetch(package: Package, into: Path, work: Path) -> str:
    """Extract the package's files (and LICENSE, when it ships one) into `into`; return
    the licence its package.json declares."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to fetch the GraphiQL files (apt-get install npm).")
    packed = subprocess.run(  # noqa: S603 - npm, fixed arguments and pinned specs
        [npm, "pack", "--silent", "--pack-destination", str(work), package.spec],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    with tarfile.open(work / packed) as tarball:
        manifest = json.loads(_read(tarball, "package/package.json"))
        for inside, target in package.files.items():
            (into / target).write_bytes(_read(tarball, inside))
        if "package/LICENSE" in tarball.getnames():
            (into / package.licence_file).write_bytes(_read(tarball, "package/LICENSE"))
    licence = str(manifest.get("license"))
    if licence not in ALLOWED_LICENCES:
        raise SystemExit(f"{package.spec} is licensed {licence}: check it before shipping it")
    return licence


def _read(tarball: tarfile.TarFile, name: str) -> bytes:
    source = tarball.extractfile(name)  # KeyError names what a new version lacks
    if source is None:
        raise SystemExit(f"{name} is not a file")
    return source.read()


def main() -> None:
    VENDOR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for package in PINNED:
            licence = fetch(package, VENDOR, Path(work))
            print(f"| `{package.spec}` | {', '.join(package.files.values())} | {licence} |")


if __name__ == "__main__":
    main()
