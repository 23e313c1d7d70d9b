#!/usr/bin/env python3
"""Writes a large file of random words, one per line, the same bytes for the same arguments.

    python3 bench/make_corpus.py OUT.txt --mib 1024 --seed 1

The words are 2 to 12 lowercase letters. To write a gigabyte quickly, 16 blocks of 4 MiB of
words are drawn once with the seed, and the file is those blocks in a seeded random order
(each block ends with a newline, so every line of the file is one word).
"""

import argparse
import random
import string

BLOCK_BYTES = 4 << 20
BLOCKS = 16


def block(rng: random.Random) -> bytes:
    lines = []
    size = 0
    letters = string.ascii_lowercase
    while size < BLOCK_BYTES:
        word = "".join(rng.choices(letters, k=rng.randint(2, 12)))
        lines.append(word)
        size += len(word) + 1
    return ("\n".join(lines) + "\n").encode("ascii")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--mib", type=int, default=1024, help="size of the file in MiB")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    blocks = [block(rng) for _ in range(BLOCKS)]
    written = 0
    with open(args.out, "wb") as out:
        while written < args.mib << 20:
            chunk = blocks[rng.randrange(BLOCKS)]
            out.write(chunk)
            written += len(chunk)
    print(f"{args.out}: {written} bytes")


if __name__ == "__main__":
    main()
