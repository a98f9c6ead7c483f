"""Are generated videos byte-reproducible? Encode the same rendered videos many times in one process.

    .venv/bin/python benchmarks/probes/encode_repeat.py                 # 100 rounds of 6 videos, mbtree off (the kit's setting) and on

Renders and encodes six 32-px moving-digit videos (seed 1), one after the other as a generation
does, ``--rounds`` times through the generator's encoder, with x264's macroblock-tree rate control off (``mbtree=0``, what
``cckit.data.synthetic`` uses) and on (x264's default, the kit's setting before generator version
2), and counts the rounds in which any video's bytes differ from the first round.
Writes benchmarks/results/encode_repeat.json (``--out``).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from cckit.data import synthetic as S


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--out", default="benchmarks/results/encode_repeat.json", help="where the JSON goes")
    args = p.parse_args()
    images, labels, _ = S.load_digits_arrays()
    jobs = []
    real = S._make_chunk
    S._make_chunk = lambda js: (jobs.extend(js), [])[1]  # collect the render jobs without running them
    S.make_moving_videos(images, labels, tempfile.mkdtemp(), num_videos=6, seed=1, frames_per_video=(4, 6), size=32)
    S._make_chunk = real

    def render(job):  # what the generator does for each video: draw, render (fresh arrays each time)
        rng = np.random.default_rng(np.random.SeedSequence(job.seed, spawn_key=(1, job.record["video_id"])))
        n = int(rng.integers(job.frames[0], job.frames[1] + 1))
        motion = str(rng.choice(job.style.motions))
        return S.render(job.image, n, job.size, job.style, motion, rng)[0]

    out = {"rounds": args.rounds, "videos": len(jobs)}
    kit_params = "threads=1:lookahead-threads=1:sliced-threads=0:mbtree=0"
    for name, params in (("mbtree_off", kit_params), ("mbtree_on", kit_params.replace(":mbtree=0", ""))):
        folder = Path(tempfile.mkdtemp())
        first, differing = None, 0
        for _ in range(args.rounds):
            data = []
            for i, job in enumerate(jobs):  # render then encode, video after video, as a generation does
                path = folder / f"{i}.mp4"
                S._write_mp4(path, render(job), x264_params=params)
                data.append(path.read_bytes())
            first = first or data
            differing += data != first
        out[f"{name}_rounds_differing"] = differing
        print(f"{name}: {differing} of {args.rounds} rounds had a video whose bytes differ from round 1")
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
