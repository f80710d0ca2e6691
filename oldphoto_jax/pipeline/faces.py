"""Stage 2 of the official pipeline: face detection, 68 landmarks and 5-point alignment.

Reproduces ``Face_Detection/detect_all_dlib.py`` (and ``_HR.py`` with ``size=512``), reference
section 6, by calling the same libraries the official script calls (detections and landmarks
depend on dlib's build and model file; they cannot be re-implemented to the pixel):

* detector: ``dlib.get_frontal_face_detector()`` called as ``detector(image)``, i.e. with
  ``upsample_num_times = 0``; faces are kept in dlib's order;
* landmarks: ``dlib.shape_predictor("shape_predictor_68_face_landmarks.dat")`` (iBUG 68 points),
  taken here from the ``face-recognition-models`` package;
* 5 key points: the two eye centres ``int((x36 + x39) / 2)``, ... (truncated to integers), the
  nose tip (30) and the mouth corners (48, 54);
* template: the official ``_standard_face_pts`` in float32, ``/256 - 1``, scaled by 1.3 and
  mapped to ``S x S`` pixels;
* similarity: scikit-image's ``SimilarityTransform`` estimated from template to landmarks (Umeyama
  least squares), so the transform maps aligned ``(x, y)`` to photo ``(x, y)``;
* crop: ``skimage.transform.warp(image, T, (S, S, 3))`` (bilinear, constant 0 outside,
  ``preserve_range=False``, clipped) and ``img_as_ubyte`` (``rint(v * 255)``).

The official warp-back script (stage 4) runs detector and landmarks again on the same image to
recover the same transforms. Both are deterministic, so :func:`extract_faces` keeps each face's
transform and stage 4 (:mod:`oldphoto_jax.pipeline.blend`) reuses it instead of detecting twice.

Images are uint8 ``H x W x 3`` RGB numpy arrays (``PIL.Image.convert("RGB")``).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import pathlib

import numpy as np

# scikit-image (and the SciPy it loads: ~40 MiB resident with OpenCV) is imported where faces
# are aligned, not with the pipeline: photos without faces never need it (issue 18, memory).

# Official ``_standard_face_pts`` in pixels of a 256-wide reference face (x, y), float32.
STANDARD_FACE_POINTS_256 = np.array(
    [[196.0, 226.0], [316.0, 226.0], [256.0, 286.0], [220.0, 360.4], [292.0, 360.4]], np.float32)
# ``compute_transformation_matrix(..., target_face_scale=1.3)`` in both face scripts.
FACE_TEMPLATE_SCALE = 1.3
# Aligned face size of the normal pipeline (``detect_all_dlib.py``); the HR script uses 512.
FACE_SIZE = 256
HR_FACE_SIZE = 512
# ``detector(image)``: dlib's default number of upsampling passes.
DETECTOR_UPSAMPLE = 0
LANDMARK_MODEL_PACKAGE = "face_recognition_models"
LANDMARK_MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
# iBUG 68-point indices used by the official ``search()``.
EYE_A_CORNERS = (36, 39)
EYE_B_CORNERS = (42, 45)
NOSE_TIP = 30
MOUTH_CORNERS = (48, 54)


@dataclasses.dataclass(frozen=True)
class AlignedFace:
    """One detected face: its aligned crop and the transform that produced it.

    ``transform`` maps aligned ``(x, y)`` to photo ``(x, y)`` (the official ``affine`` object);
    stage 4 warps the enhanced face back with its inverse.
    """

    image: np.ndarray  # uint8 S x S x 3
    transform: SimilarityTransform
    landmarks: np.ndarray  # int (68, 2), dlib order, (x, y)
    points: np.ndarray  # int (5, 2), the official 5 key points

    @property
    def size(self) -> int:
        return int(self.image.shape[0])


def _import_dlib():
    try:
        import dlib
    except ImportError as error:
        raise ImportError(
            "face detection needs dlib: install the 'dlib-bin' package "
            "(pip install 'oldphoto-jax[faces]')") from error
    return dlib


def landmark_model_path() -> pathlib.Path:
    """``shape_predictor_68_face_landmarks.dat`` of the installed ``face-recognition-models``.

    The package is located without importing it (its ``__init__`` imports ``pkg_resources``,
    which current setuptools no longer provides).
    """
    spec = importlib.util.find_spec(LANDMARK_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the 68-point landmark model ships with the '{LANDMARK_MODEL_PACKAGE}' package "
            "(pip install face-recognition-models==0.3.0); it is not installed")
    for folder in spec.submodule_search_locations:
        path = pathlib.Path(folder) / "models" / LANDMARK_MODEL_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{LANDMARK_MODEL_FILE} not found in the '{LANDMARK_MODEL_PACKAGE}' package at "
        f"{list(spec.submodule_search_locations)}")


@functools.cache
def face_detector():
    """dlib's HOG + linear SVM frontal face detector (loaded once)."""
    return _import_dlib().get_frontal_face_detector()


@functools.cache
def landmark_predictor():
    """dlib's 68-point shape predictor (loaded once)."""
    return _import_dlib().shape_predictor(str(landmark_model_path()))


def _check_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 RGB image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def detect_face_landmarks(rgb: np.ndarray) -> list[np.ndarray]:
    """68 landmarks ``(x, y)`` (int64 ``68 x 2``) of every face dlib finds, in dlib's order."""
    rgb = _check_rgb(rgb)
    rectangles = list(face_detector()(rgb, DETECTOR_UPSAMPLE))
    if not rectangles:
        return []
    predictor = landmark_predictor()
    return [np.array([[p.x, p.y] for p in predictor(rgb, r).parts()], dtype=np.int64)
            for r in rectangles]


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The official ``search()``: eye centres, nose tip and mouth corners, int64 ``5 x 2``.

    Eye centres are ``int((a + b) / 2)`` per coordinate: the mean truncated toward zero.
    """
    landmarks = np.asarray(landmarks)
    if landmarks.shape != (68, 2):
        raise ValueError(f"expected 68 x 2 landmarks, got shape {landmarks.shape}")

    def eye_centre(a: int, b: int) -> np.ndarray:
        return np.trunc((landmarks[a].astype(np.float64) + landmarks[b]) / 2)

    points = [eye_centre(*EYE_A_CORNERS), eye_centre(*EYE_B_CORNERS), landmarks[NOSE_TIP],
              landmarks[MOUTH_CORNERS[0]], landmarks[MOUTH_CORNERS[1]]]
    return np.array(points).astype(np.int64)


def template_points(size: int = FACE_SIZE) -> np.ndarray:
    """Official target points of an ``size x size`` aligned face, float32 ``5 x 2`` ``(x, y)``.

    ``std = pts / 256 - 1``; ``target = (std * 1.3 + 1) / 2 * size``, all in float32 as the
    official code computes it (256 → (89.0, 108.5), (167.0, 108.5), (128.0, 147.5), ...).
    """
    standard = STANDARD_FACE_POINTS_256 / np.float32(256.0) - np.float32(1.0)
    scaled = standard * np.float32(FACE_TEMPLATE_SCALE) + np.float32(1.0)
    return scaled / np.float32(2.0) * np.float32(size)


def alignment_transform(points: np.ndarray, size: int = FACE_SIZE) -> SimilarityTransform:
    """Similarity mapping the template of ``size`` onto the 5 key ``points`` (aligned → photo).

    The official ``SimilarityTransform().estimate(target_pts, landmarks)``; scikit-image 0.26's
    ``from_estimate`` computes the same matrix without the deprecation warning.
    """
    from skimage.transform import SimilarityTransform

    transform = SimilarityTransform.from_estimate(template_points(size), np.asarray(points))
    if not transform:
        raise ValueError(f"cannot estimate a face alignment from the points {points.tolist()}: "
                         f"{transform}")
    return transform


def align_face(rgb: np.ndarray, transform: SimilarityTransform, size: int = FACE_SIZE
               ) -> np.ndarray:
    """The aligned face written by stage 2: ``img_as_ubyte(warp(image, T, (S, S, 3)))``.

    Bilinear, constant 0 outside the photo, uint8 scaled to [0, 1] (``preserve_range=False``),
    clipped, then rounded to uint8 (half to even).
    """
    from skimage.transform import warp
    from skimage.util import img_as_ubyte

    warped = warp(_check_rgb(rgb), transform, output_shape=(size, size, 3), order=1,
                  mode="constant", cval=0.0, clip=True, preserve_range=False)
    return img_as_ubyte(warped)


def extract_faces(rgb: np.ndarray, size: int = FACE_SIZE) -> list[AlignedFace]:
    """Stage 2 on one photo: every face dlib finds, aligned to ``size x size``, in dlib order.

    An image without faces gives an empty list (the official script skips it).
    """
    rgb = _check_rgb(rgb)
    faces = []
    for landmarks in detect_face_landmarks(rgb):
        points = five_points(landmarks)
        transform = alignment_transform(points, size)
        faces.append(AlignedFace(align_face(rgb, transform, size), transform, landmarks, points))
    return faces
