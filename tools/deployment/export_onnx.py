"""Export a YOLOv7 checkpoint to ONNX: the deployed graph, decode and (optionally) NMS in one file.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out MODEL.onnx
        [--input-shape H W] [--batch N | --dynamic-batch] [--opset 17] [--simplify]
        [--nms {none,onnx,trt}] [--score-thr T] [--iou-thr T] [--max-dets K] [--cfg-options k=v ...]

``--nms none``: ``predictions (N, boxes, 4 + 1 + C)``, xyxy network-input pixels, objectness, class
probabilities. ``--nms onnx`` (default): ``num_dets, boxes, scores, labels`` through the standard
NonMaxSuppression op (plain onnxruntime gives final detections). ``--nms trt``: the same outputs through
TensorRT's EfficientNMS_TRT plugin. NMS settings default to the config's ``model.test_cfg``; the input
shape to its test letterbox. The pre- and postprocessing are recorded in the model's metadata
(docs/deploy.md). The file is written only once exported and checked with ``onnx.checker``.
"""
import argparse
import sys

from mmengine.config import Config, DictAction

import yolov7_mmdet  # noqa: F401  (registers the plugin)
from yolov7_mmdet.deployment.export import (MIN_OPSET, NMS_MODES, check_nms_args, check_output_file,
                                            default_input_hw, export_metadata, export_onnx, load_detector)
from yolov7_mmdet.utils.launch import load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a YOLOv7 checkpoint to ONNX')
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (training graph, or deployed with model.deploy=True)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--input-shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='network input size (default: the test pipeline\'s letterbox)')
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument('--batch', type=int, default=1, help='fixed batch size (default 1)')
    batch.add_argument('--dynamic-batch', action='store_true', help='a dynamic batch dimension')
    parser.add_argument('--opset', type=int, default=17, help=f'ONNX opset (>= {MIN_OPSET}; default 17)')
    parser.add_argument('--simplify', action='store_true', help='simplify the graph with onnxslim')
    parser.add_argument('--nms', choices=NMS_MODES, default='onnx', help='how the graph ends (default onnx)')
    parser.add_argument('--score-thr', type=float, help='NMS score threshold (default: test_cfg.score_thr)')
    parser.add_argument('--iou-thr', type=float, help='NMS IoU threshold (default: test_cfg.nms.iou_threshold)')
    parser.add_argument('--max-dets', type=int, help='detections per image (default: test_cfg.max_per_img)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def nms_settings(cfg: Config, args: argparse.Namespace) -> dict:
    """``score_thr``, ``iou_thr``, ``max_dets``: the flags, else the config's ``model.test_cfg``; checked."""
    test_cfg = cfg.model.get('test_cfg') or {}
    defaults = dict(score_thr=test_cfg.get('score_thr', 0.001),
                    iou_thr=(test_cfg.get('nms') or {}).get('iou_threshold', 0.65),
                    max_dets=test_cfg.get('max_per_img', 300))
    given = dict(score_thr=args.score_thr, iou_thr=args.iou_thr, max_dets=args.max_dets)
    settings = {key: defaults[key] if given[key] is None else given[key] for key in defaults}
    check_nms_args(**settings)
    return settings


def main(argv=None) -> str:
    args = parse_args(argv)
    check_output_file(args.out, inputs=[args.checkpoint, args.config])
    cfg = load_config(args.config, cfg_options=args.cfg_options)
    nms = nms_settings(cfg, args)  # checked before the (slow) model load
    input_hw = tuple(args.input_shape) if args.input_shape else default_input_hw(cfg)
    detector = load_detector(cfg, args.checkpoint)
    metadata = export_metadata(cfg, input_hw=input_hw, num_classes=detector.bbox_head.num_classes,
                               nms=args.nms, **nms)
    export_onnx(detector, args.out, input_hw=input_hw, batch=args.batch, dynamic_batch=args.dynamic_batch,
                opset=args.opset, nms=args.nms, metadata=metadata, simplify=args.simplify, **nms)
    print(f'Exported {args.out} (input {input_hw[0]}x{input_hw[1]}, '
          f'{"dynamic batch" if args.dynamic_batch else f"batch {args.batch}"}, opset {args.opset}, '
          f'--nms {args.nms}); checked with onnx.checker.')
    return args.out


if __name__ == '__main__':
    try:
        main()
    except (ValueError, OSError) as error:  # bad input, a missing file, a full disk: one line
        sys.exit(f'export_onnx.py: error: {error}')
