"""Run an exported YOLOv7 ONNX model with onnxruntime: no PyTorch model runs, only numpy/mmcv image code.

The model's ``metadata_props`` (written by ``tools/deployment/export_onnx.py``) say how to prepare an
image and read the outputs; :class:`ONNXRuntimeDetector` follows them::

    detector = ONNXRuntimeDetector('yolov7_tiny.onnx')
    results = detector.detect([cv2.imread('street.jpg')])   # BGR images, any sizes
    results[0]['bboxes'], results[0]['scores'], results[0]['labels']   # original-image pixels

Images are what ``cv2.imread`` gives: ``uint8`` arrays, ``(h, w, 3)`` BGR. A grayscale image
(``(h, w)`` or ``(h, w, 1)``) is repeated to 3 channels and a 4-channel one is read as BGRA
(``cv2.IMREAD_UNCHANGED``), its alpha dropped. Any other dtype is refused, a float one included: a
``[0, 1]`` float image read as ``uint8`` would be near-black pixels and detect nothing, silently;
convert it first (``(image * 255).round().astype(np.uint8)``).

The letterbox is the one of the YOLOv7 test pipeline (mmdet ``Resize(keep_ratio=True)`` then
``YOLOv7Letterbox``, through the same functions), so a model gives the same detections here as in
``tools/test.py``.
"""
from __future__ import annotations

import json
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Sequence

import mmcv
import numpy as np

from ..datasets.transforms.letterbox import letterbox

END2END_OUTPUTS = ('num_dets', 'boxes', 'scores', 'labels')


@dataclass(frozen=True)
class LetterboxParams:
    """How an image was mapped onto the network input: ``(w_scale, h_scale)`` and the padding."""

    scale_factor: tuple[float, float]
    pad_top_left: tuple[int, int]
    original_hw: tuple[int, int]


def letterbox_image(image: np.ndarray, *, input_hw: Sequence[int], pad_val: float = 114,
                    keep_ratio_resize: bool = True,
                    allow_scale_up: bool = False) -> tuple[np.ndarray, LetterboxParams]:
    """Resize and pad a ``(h, w, 3)`` image to ``input_hw`` exactly as the YOLOv7 test pipeline does.

    The same functions as the pipeline: mmcv's ``imrescale`` (mmdet's ``Resize(keep_ratio=True)``),
    then :func:`~yolov7_mmdet.datasets.transforms.letterbox.letterbox` (``YOLOv7Letterbox``).

    Args:
        image (np.ndarray): ``(h, w, 3)`` uint8 image.
        input_hw (Sequence[int]): ``(H, W)`` of the network input.
        pad_val (float): Fill value of the padding.
        keep_ratio_resize (bool): First resize keeping the aspect ratio to fit ``(W, H)`` (mmdet's
            ``Resize(keep_ratio=True)``, which may enlarge).
        allow_scale_up (bool): Whether the letterbox itself may enlarge the image.

    Returns:
        tuple: the ``(H, W, 3)`` image and its :class:`LetterboxParams`.
    """
    out_hw = (int(input_hw[0]), int(input_hw[1]))
    height, width = image.shape[:2]
    resized = image
    if keep_ratio_resize:
        resized = mmcv.imrescale(image, out_hw[::-1], interpolation='bilinear')  # scale is (W, H)
    results = dict(img=resized, scale_factor=(resized.shape[1] / width, resized.shape[0] / height))
    letterbox(results, out_hw=out_hw, pad_val=pad_val, allow_scale_up=allow_scale_up)
    top, _, left, _ = results['pad_param']  # (top, bottom, left, right)
    params = LetterboxParams(scale_factor=results['scale_factor'], pad_top_left=(int(top), int(left)),
                             original_hw=(height, width))
    return results['img'], params


def as_bgr_uint8(image: np.ndarray, *, index: int = 0) -> np.ndarray:
    """Check one input image of :meth:`ONNXRuntimeDetector.detect`, as a ``(h, w, 3)`` uint8 BGR view.

    Grayscale ``(h, w)`` / ``(h, w, 1)`` images are repeated to 3 channels, BGRA ``(h, w, 4)`` ones
    lose their alpha; anything else (``None``, another dtype, another shape, an empty image) is a
    ``TypeError`` / ``ValueError`` naming the image ``index`` and the fix.
    """
    if not isinstance(image, np.ndarray):
        hint = ' (cv2.imread gives None for a file it cannot read)' if image is None else ''
        raise TypeError(f'Image {index} is {type(image).__name__}{hint}; detect() takes numpy arrays, '
                        '(h, w, 3) uint8 BGR as cv2.imread gives.')
    if image.dtype != np.uint8:
        raise TypeError(f'Image {index} has dtype {image.dtype}; detect() takes uint8 pixels in [0, 255] '
                        '(a [0, 1] float image: (image * 255).round().astype(np.uint8)).')
    channels = image.shape[2] if image.ndim == 3 else 1
    if image.ndim not in (2, 3) or channels not in (1, 3, 4) or 0 in image.shape:
        raise ValueError(f'Image {index} has shape {image.shape}; detect() takes (h, w, 3) BGR, (h, w, 4) '
                         'BGRA or (h, w) / (h, w, 1) grayscale images, h and w > 0.')
    if channels == 1:
        return np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)  # (h, w) / (h, w, 1) -> (h, w, 3)
    return image[..., :3]  # BGR, or BGRA without its alpha


def open_session(model_file: str, *, providers: Optional[Sequence[str]] = None):
    """An onnxruntime session on ``model_file``; a missing or non-ONNX file is a one-line error."""
    import onnxruntime
    if not osp.isfile(model_file):
        raise FileNotFoundError(f'ONNX model {model_file!r} does not exist.')
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        return onnxruntime.InferenceSession(model_file, sess_options=options,
                                            providers=list(providers or ['CPUExecutionProvider']))
    except Exception as error:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f'{model_file!r} is not an ONNX model that onnxruntime can load ({reason}); '
                         'export one with tools/deployment/export_onnx.py.') from error


def boxes_to_original(boxes: np.ndarray, params: LetterboxParams) -> np.ndarray:
    """``(K, 4)`` xyxy boxes in network-input pixels -> original-image pixels, clipped to the image."""
    top, left = params.pad_top_left
    scale_w, scale_h = params.scale_factor
    height, width = params.original_hw
    boxes = (boxes - np.array([left, top, left, top], np.float32)) / np.array(
        [scale_w, scale_h, scale_w, scale_h], np.float32)
    return np.clip(boxes, 0, np.array([width, height, width, height], np.float32))


class ONNXRuntimeDetector:
    """An exported YOLOv7 model in an onnxruntime session, with its pre- and postprocessing.

    Args:
        model_file (str): The ``.onnx`` file written by ``tools/deployment/export_onnx.py``.
        providers (Sequence[str], optional): onnxruntime execution providers; the CPU by default.
    """

    def __init__(self, model_file: str, *, providers: Optional[Sequence[str]] = None) -> None:
        self.session = open_session(model_file, providers=providers)
        props = self.session.get_modelmeta().custom_metadata_map
        if 'input_shape' not in props:
            raise ValueError(f'{model_file!r} has no yolov7_mmdet metadata (input_shape, mean, std, ...); '
                             'export it with tools/deployment/export_onnx.py.')
        self.meta = {key: json.loads(value) for key, value in props.items() if key != 'exporter'}
        self.input_hw = tuple(self.meta['input_shape'])
        self.classes = list(self.meta['classes'])
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        batch_dim = model_input.shape[0]
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) else None  # None: dynamic
        self.output_names = [output.name for output in self.session.get_outputs()]

    @property
    def nms(self) -> str:
        """How the model ends: ``none`` (raw predictions), ``onnx`` or ``trt`` (detections)."""
        return self.meta['nms']

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, LetterboxParams]:
        """A BGR ``(h, w, 3)`` uint8 image (or grayscale / BGRA, see :func:`as_bgr_uint8`) -> the
        ``(3, H, W)`` float32 input and its letterbox."""
        letterbox = self.meta['letterbox']
        padded, params = letterbox_image(as_bgr_uint8(image), input_hw=self.input_hw, pad_val=letterbox['pad_val'],
                                         keep_ratio_resize=letterbox['keep_ratio_resize'],
                                         allow_scale_up=letterbox['allow_scale_up'])
        if self.meta['bgr_to_rgb']:
            padded = padded[..., ::-1]
        mean = np.asarray(self.meta['mean'], np.float32)
        std = np.asarray(self.meta['std'], np.float32)
        normalized = (padded.astype(np.float32) - mean) / std
        return np.ascontiguousarray(normalized.transpose(2, 0, 1)), params  # (H, W, 3) -> (3, H, W)

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run the session on ``(N, 3, H, W)`` inputs (in chunks of a fixed batch size); outputs by name."""
        if tuple(inputs.shape[2:]) != self.input_hw:
            raise ValueError(f'The model takes {self.input_hw} inputs (H, W), got {tuple(inputs.shape[2:])}.')
        step = self.fixed_batch or len(inputs)
        chunks = []
        for start in range(0, len(inputs), step):
            chunk = inputs[start:start + step]
            missing = step - len(chunk)
            if missing:  # a last, short chunk of a fixed-batch model: pad with copies, drop their outputs
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], missing, axis=0)])
            outputs = self.session.run(self.output_names, {self.input_name: chunk.astype(np.float32)})
            chunks.append([output[:step - missing] for output in outputs])
        return {name: np.concatenate([chunk[i] for chunk in chunks]) for i, name in enumerate(self.output_names)}

    def detect(self, images: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Detect on BGR images; per image ``bboxes`` (K, 4) xyxy original pixels, ``scores``, ``labels``.

        Args:
            images (Sequence[np.ndarray]): uint8 images of any sizes, ``(h, w, 3)`` BGR (grayscale and
                BGRA are converted, see the module doc); an empty sequence gives an empty list.
        """
        if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
            raise TypeError(f'detect() takes a list of images, got {type(images).__name__}; '
                            'for one image: detect([image]).')
        if self.nms != 'onnx':
            raise ValueError(f'This model was exported with --nms {self.nms}: onnxruntime gives final '
                             'detections only for --nms onnx (none: run your own NMS on "predictions"; '
                             'trt: needs TensorRT).')
        images = [as_bgr_uint8(image, index=index) for index, image in enumerate(images)]
        if not images:
            return []
        prepared = [self.preprocess(image) for image in images]
        outputs = self.run(np.stack([inputs for inputs, _ in prepared]))
        return [self._image_detections(outputs, i, params) for i, (_, params) in enumerate(prepared)]

    @staticmethod
    def _image_detections(outputs: dict[str, np.ndarray], index: int,
                          params: LetterboxParams) -> dict[str, np.ndarray]:
        count = int(outputs['num_dets'][index, 0])
        return dict(bboxes=boxes_to_original(outputs['boxes'][index, :count], params),
                    scores=outputs['scores'][index, :count],
                    labels=outputs['labels'][index, :count].astype(np.int64))
