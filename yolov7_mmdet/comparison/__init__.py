"""Compare our YOLOv7 models with any MMDetection config: cost on a device, or learning on your data.

The command line is ``tools/analysis_tools/compare_models.py``; its parts, each readable alone:

* :mod:`.models`: which models (our short names, ``mmdet::`` configs, config files) and their
  published COCO AP;
* :mod:`.cost`: parameters, FLOPs, latency, throughput and peak memory of the deployed forms;
* :mod:`.recipe`: each model's recipe fitted to one budget and one training pipeline;
* :mod:`.training`: the resumable (model, seed) runs and the data-prior floor;
* :mod:`.report`: tables, CSV, JSON and plots.
"""
from .cost import cost_settings, run_cost
from .models import OURS, ModelSpec, resolve_model, resolve_models, with_nominal_batches
from .report import train_settings, write_cost_outputs, write_train_outputs
from .training import run_train

__all__ = ['OURS', 'ModelSpec', 'cost_settings', 'resolve_model', 'resolve_models', 'run_cost',
           'run_train', 'train_settings', 'with_nominal_batches', 'write_cost_outputs',
           'write_train_outputs']
