"""``import yolov7_mmdet`` registers every component in mmdet's own registries, and mmdet's own
machinery (``Config.fromfile`` with ``custom_imports``) builds our configs without importing us."""
import subprocess
import sys
from pathlib import Path

import pytest
from mmdet import registry

import yolov7_mmdet

REGISTERED = {
    registry.MODELS: ['YOLOv7', 'YOLOv7Backbone', 'YOLOv7PAFPN', 'YOLOv7Head', 'YOLOv7Loss', 'RepConvN',
                      'SPPCSPC'],
    registry.TASK_UTILS: ['YOLOv7CandidateRegion', 'YOLOv7SimOTAAssigner'],
    registry.TRANSFORMS: ['YOLOv7Mosaic', 'YOLOv7MixUp', 'YOLOv7RandomAffine', 'YOLOv7HSVRandomAug',
                          'YOLOv7Letterbox', 'YOLOv7PasteIn', 'YOLOv7LoadAnnotations'],
    registry.DATASETS: ['CocoJSONDataset'],
    registry.HOOKS: ['YOLOv7ParamSchedulerHook', 'YOLOv7EMAHook', 'StopOnNonFiniteLossHook',
                     'AtomicCheckpointHook', 'DatasetClassesCheckHook', 'RNGStateHook'],
    registry.OPTIM_WRAPPER_CONSTRUCTORS: ['YOLOv7OptimWrapperConstructor'],
    registry.OPTIM_WRAPPERS: ['YOLOv7OptimWrapper', 'YOLOv7AmpOptimWrapper'],
}


@pytest.mark.parametrize('registry_, names', REGISTERED.items(), ids=lambda r: getattr(r, 'name', ''))
def test_components_live_in_mmdets_registries(registry_, names):
    missing = [name for name in names if registry_.get(name) is None]
    assert not missing, f'not registered in mmdet {registry_.name}: {missing}'


def test_mmdet_builds_our_config_through_custom_imports():
    config = yolov7_mmdet.config_path('yolov7/yolov7_tiny_8xb16-300e_coco.py')
    code = f'''
import sys
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmdet.registry import MODELS
cfg = Config.fromfile({config!r})          # imports yolov7_mmdet through custom_imports
assert 'yolov7_mmdet' in sys.modules
init_default_scope(cfg.default_scope)
model = MODELS.build(cfg.model)
print(type(model).__name__, sum(p.numel() for p in model.parameters()))
'''
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=Path(config).parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ['YOLOv7', '6228762']
