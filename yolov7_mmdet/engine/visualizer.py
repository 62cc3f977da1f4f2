"""``YOLOv7DetVisualizer``: mmdet's ``DetLocalVisualizer`` without the log backends it has no folder for.

A runner builds the config's ``visualizer`` with its log folder as ``save_dir``. mmdet's
``DetInferencer`` builds the same config without one: mmengine then builds every backend of
``vis_backends``, finds that ``LocalVisBackend`` (like every backend that needs a folder) has none,
drops it and warns "Failed to add LocalVisBackend, please provide the `save_dir` argument" for each
inferencer. Those backends store a training run's scalars, configs and images; an inferencer draws
and writes its images itself (``out_dir``). This visualizer leaves them out from the start when there
is no folder, and is otherwise mmdet's (a runner's visualizer keeps every backend).
"""
from __future__ import annotations

import inspect
from typing import Optional, Union

from mmdet.registry import VISBACKENDS, VISUALIZERS
from mmdet.visualization import DetLocalVisualizer


def needs_save_dir(backend: Union[dict, object]) -> bool:
    """Whether a ``vis_backends`` entry is a config whose backend requires a ``save_dir`` it lacks."""
    if not isinstance(backend, dict) or backend.get('save_dir') is not None:
        return False  # a built backend, or one given its folder
    backend_type = backend['type']
    backend_cls = VISBACKENDS.get(backend_type) if isinstance(backend_type, str) else backend_type
    save_dir = inspect.signature(backend_cls.__init__).parameters.get('save_dir')
    return save_dir is not None and save_dir.default is inspect.Parameter.empty


@VISUALIZERS.register_module()
class YOLOv7DetVisualizer(DetLocalVisualizer):
    """mmdet's ``DetLocalVisualizer``; without ``save_dir``, the backends that need one are left out.

    Args:
        name (str): The instance name (mmengine's ``ManagerMixin``).
        vis_backends (list[dict] | dict, optional): Backend configs or instances.
        save_dir (str, optional): The folder of the backends (a runner's log folder); None outside a
            runner (``DetInferencer``).
        **kwargs: The other arguments of ``DetLocalVisualizer`` (colors, line width, ...).
    """

    def __init__(self, name: str = 'visualizer', *, vis_backends: Optional[Union[list, dict]] = None,
                 save_dir: Optional[str] = None, **kwargs) -> None:
        if save_dir is None and vis_backends is not None:
            backends = [vis_backends] if isinstance(vis_backends, dict) else vis_backends
            vis_backends = [backend for backend in backends if not needs_save_dir(backend)]
        super().__init__(name=name, vis_backends=vis_backends, save_dir=save_dir, **kwargs)
