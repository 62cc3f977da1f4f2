"""Evaluate an exported ONNX model (``--nms onnx``) with onnxruntime, as ``tools/test.py`` evaluates a checkpoint.

    python tools/deployment/test_onnx.py CONFIG MODEL.onnx [--work-dir DIR] [--out results.pkl]
        [--providers CPUExecutionProvider ...] [--cfg-options k=v ...]

The config's test dataloader, in its square form (every image letterboxed to the exported shape; a
config with the official rectangular batches is switched to it), and ``data_preprocessor`` prepare the
images, onnxruntime runs the model
and mmdet's ``CocoMetric`` (the config's ``test_evaluator``) gives the same mAP table as for the
PyTorch model. A model whose number of classes or normalisation differs from the config's is refused.
"""
import argparse
import pickle
import sys

from mmengine.config import DictAction
from mmengine.logging import print_log

import yolov7_mmdet  # noqa: F401  (registers the plugin and ONNXRuntimeYOLOv7)
from mmdet.evaluation import DumpDetResults
from yolov7_mmdet.datasets.rect_eval import set_eval_protocol
from yolov7_mmdet.deployment.export import check_output_file, write_output
from yolov7_mmdet.deployment.runtime import open_session
from yolov7_mmdet.utils.launch import build_runner, load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate an exported ONNX model with onnxruntime')
    parser.add_argument('config', help='the config the model was exported from')
    parser.add_argument('model', help='the .onnx file (exported with --nms onnx)')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to this pickle file for offline evaluation')
    parser.add_argument('--providers', nargs='+', default=['CPUExecutionProvider'],
                        help='onnxruntime execution providers (default: CPUExecutionProvider)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    args = parser.parse_args(argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error('--out must name a .pkl or .pickle file')
    return args


class AtomicDumpDetResults(DumpDetResults):
    """mmdet's ``DumpDetResults``, its pickle written atomically (a full disk leaves no partial file)."""

    def compute_metrics(self, results: list) -> dict:
        write_output(self.out_file_path, pickle.dumps(results))
        print_log(f'Results has been saved to {self.out_file_path}.', logger='current')
        return {}


def main(argv=None) -> dict:
    args = parse_args(argv)
    open_session(args.model)  # a missing or non-ONNX file: one line, before the dataset is read
    if args.out is not None:
        check_output_file(args.out, inputs=[args.model, args.config])
    cfg = load_config(args.config, cfg_options=args.cfg_options, work_dir=args.work_dir)
    set_eval_protocol(cfg, 'square')  # an exported model has one input shape
    cfg.model = dict(type='ONNXRuntimeYOLOv7', onnx_file=args.model, providers=args.providers,
                     data_preprocessor=cfg.model.data_preprocessor,
                     num_classes=cfg.model.get('bbox_head', {}).get('num_classes'))
    cfg.load_from = None
    cfg.custom_hooks = [hook for hook in cfg.get('custom_hooks', []) if 'EMA' not in hook['type']]
    runner = build_runner(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(AtomicDumpDetResults(out_file_path=args.out))
    return runner.test()


if __name__ == '__main__':
    try:
        main()
    except (ValueError, OSError) as error:  # bad input, a missing file, a full disk: one line
        sys.exit(f'test_onnx.py: error: {error}')
