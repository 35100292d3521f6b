"""Derive the bundled sample from an image-folder archive of CIFAR-10 (run once by maintainers).

    python tools/make_sample.py path/to/cifar10-jpeg.tar.xz cifar_utils/sample/cifar10-sample.tar.gz

Keeps the original file bytes (no re-encoding) of a seeded, class-balanced choice of images.
"""

import io
import sys
import tarfile

import numpy as np

PER_CLASS = {"train": 500, "test": 100}
SEED = 0


def main(source: str, target: str) -> None:
    members: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    with tarfile.open(source) as archive:
        for m in archive:
            parts = m.name.split("/")
            if m.isfile() and len(parts) == 3 and parts[0] in PER_CLASS:
                members.setdefault((parts[0], parts[1]), []).append(
                    (m.name, archive.extractfile(m).read()))
    rng = np.random.default_rng(SEED)
    with tarfile.open(target, "w:gz", compresslevel=9) as out:
        for (split, _class), files in sorted(members.items()):
            files.sort()
            for i in sorted(rng.choice(len(files), PER_CLASS[split], replace=False)):
                name, data = files[i]
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                out.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main(*sys.argv[1:3])
