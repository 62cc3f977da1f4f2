"""Which models to compare: our short names, mmdet's packaged configs or config files, and their
published COCO AP (ours: the official YOLOv7 figures; mmdet's: each model zoo's ``metafile.yml``)."""
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
import yaml
from mmengine.config import Config
from mmengine.registry import init_default_scope

from ..datasets.rect_eval import set_eval_protocol
from ..utils.config import config_path

OURS = ('yolov7_tiny', 'yolov7_l', 'yolov7_x', 'yolov7_w6', 'yolov7_e6', 'yolov7_d6', 'yolov7_e6e')
# Official COCO val2017 box AP (configs/yolov7/README.md; tiny: the official SiLU variant's figure)
OFFICIAL_AP = dict(yolov7_tiny=38.7, yolov7_l=51.2, yolov7_x=52.9, yolov7_w6=54.6, yolov7_e6=55.9,
                   yolov7_d6=56.3, yolov7_e6e=56.8)


@dataclass
class ModelSpec:
    """One model to compare: its label in tables, its config and its published COCO AP."""
    label: str
    cfg: Config
    published_ap: Optional[float]
    nominal_batch: Optional[int] = None  # ours: images per optimizer step; None: the recipe's


def model_label(name: str) -> str:
    """``yolov7_tiny`` -> itself; ``mmdet::yolox/yolox_tiny_8xb8-300e_coco.py`` -> ``yolox_tiny``;
    ``faster-rcnn_r50_fpn_1x_coco.py`` -> ``faster-rcnn_r50_fpn_1x``."""
    stem = re.sub(r'_coco$', '', Path(name).stem)
    return re.split(r'_\d+xb\d+', stem)[0]


def published_ap(name: str, cfg: Config) -> Optional[float]:
    """COCO box AP of ``cfg`` in its model zoo's ``metafile.yml`` (beside the config), if listed."""
    if name in OFFICIAL_AP:
        return OFFICIAL_AP[name]
    config_file = Path(cfg.filename)
    metafile = config_file.parent / 'metafile.yml'
    if not metafile.is_file():
        return None
    for model in yaml.safe_load(metafile.read_text()).get('Models', []):
        if Path(model.get('Config', '')).name != config_file.name:
            continue
        for result in model.get('Results') or []:
            if result.get('Task') == 'Object Detection' and 'box AP' in result.get('Metrics', {}):
                return float(result['Metrics']['box AP'])
    return None


def mmdet_config_path(name: str) -> str:
    """The file of ``mmdet::DIR/FILE.py`` among mmdet's packaged configs."""
    import mmdet
    path = Path(mmdet.__file__).parent / '.mim' / 'configs' / name[len('mmdet::'):]
    if not path.is_file():
        raise FileNotFoundError(f'--models {name}: no such config in mmdet ({path})')
    return str(path)


def resolve_model(name: str) -> ModelSpec:
    """A ``ModelSpec`` from our short name, an ``mmdet::`` config or a config file."""
    if name in OURS:
        cfg = Config.fromfile(config_path(f'yolov7/{name}_8xb16-300e_coco.py'))
        set_eval_protocol(cfg, 'square')  # every model letterboxed square, as the others evaluate
    elif name.startswith('mmdet::'):
        cfg = Config.fromfile(mmdet_config_path(name))
    elif Path(name).is_file():
        cfg = Config.fromfile(name)
    else:
        raise ValueError(f'--models {name!r}: neither one of ours ({", ".join(OURS)}), nor an '
                         "'mmdet::' config, nor a config file")
    return ModelSpec(label=model_label(name), cfg=cfg, published_ap=published_ap(name, cfg))


def resolve_models(names: Sequence[str]) -> List[ModelSpec]:
    specs = [resolve_model(name) for name in names]
    labels = [spec.label for spec in specs]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f'--models: two models share the label(s) {duplicates}')
    return specs


def with_nominal_batches(specs: Sequence[ModelSpec],
                         nominal_batches: Optional[Sequence[int]]) -> List[ModelSpec]:
    """Each of our ``specs`` once per images-per-optimizer-step in ``nominal_batches`` (the others
    once): labelled as before for the recipe's own (64), ``<label>_nb<N>`` for another ``N``."""
    if not nominal_batches:
        return list(specs)
    expanded = []
    for spec in specs:
        recipe_nominal = spec.cfg.optim_wrapper.get('nominal_batch_size')
        if recipe_nominal is None:  # not one of ours: it does not accumulate
            expanded.append(spec)
            continue
        for nominal in dict.fromkeys(nominal_batches):  # in order, once each
            label = spec.label if nominal == recipe_nominal else f'{spec.label}_nb{nominal}'
            expanded.append(dataclasses.replace(spec, label=label, nominal_batch=nominal))
    return expanded


def build_model(cfg: Config) -> torch.nn.Module:
    from mmdet.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return MODELS.build(cfg.model)


def size_divisor(model: torch.nn.Module) -> int:
    """The stride every input side must be a multiple of (64 for the P6 models)."""
    return getattr(model.backbone, 'size_divisor', 32)


def own_input_shape(cfg: Config, divisor: int) -> Tuple[int, int]:
    """(H, W) of the config's test resize scale (``(w, h)``), rounded up to ``divisor``."""
    for transform in cfg.test_dataloader.dataset.pipeline:
        if transform.get('type') == 'Resize':
            width, height = transform['scale']
            return (-(-height // divisor) * divisor, -(-width // divisor) * divisor)
    raise ValueError(f'{cfg.filename}: no Resize in its test pipeline; cannot tell its input size')

