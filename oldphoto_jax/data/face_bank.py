"""Aligned clean faces for the ``faces`` stage, cut from any photos with the stage-2 aligner.

``align_faces(sources, size)`` runs ``oldphoto_jax.pipeline.faces.extract_faces`` (dlib detector,
68 landmarks, official 5-point similarity alignment) on every photo once, in the calling process,
and keeps the ``size x size`` crops in memory as an ``ArrayPhotos``. This suits a few hundred
portraits; a large set of already aligned faces (e.g. FFHQ-style crops) should instead be given
directly as a photo source: the ``faces`` records resize them to the crop size.
"""
from __future__ import annotations

import logging
from typing import Iterable

from oldphoto_jax.data.photos import ArrayPhotos, PhotoSource

logger = logging.getLogger("oldphoto_jax.data")


def align_faces(sources: Iterable[PhotoSource], size: int = 256) -> ArrayPhotos:
    """Every face found in the photos of ``sources``, aligned to ``size x size`` (needs dlib).

    Faces are named ``<photo name>#<k>`` in dlib's order. Raises ``ValueError`` when no photo
    has a face.
    """
    from oldphoto_jax.pipeline import faces as face_alignment  # deferred: imports dlib lazily

    images, names = [], []
    for source in sources:
        for index in range(len(source)):
            found = face_alignment.extract_faces(source[index], size)
            if not found:
                logger.info("no face found in %s", source.name(index))
            for k, face in enumerate(found):
                images.append(face.image)
                names.append(f"{source.name(index)}#{k}")
    if not images:
        raise ValueError("no faces found in the given photos")
    return ArrayPhotos(images, names)
