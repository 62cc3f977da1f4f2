"""The registry that mmdet 3.3's scope lacks: ``function``.

mmdet registers everything into its own child registries of mmengine's (``mmdet.registry``) except
functions. mmengine's inferencers (mmdet's ``DetInferencer``) look the test ``collate_fn`` up in the
default scope's ``function`` registry and, with none in the ``mmdet`` scope, log "Failed to search
registry with scope "mmdet" in the "function" registry tree" on every construction. ``FUNCTIONS`` is
that registry: a child of mmengine's, so the functions registered there (``pseudo_collate``,
``yolov7_collate``) are found through it, and mmengine's runner keeps finding them in its own.
"""
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import Registry

# a later mmdet may bring its own: use it then (two children of one scope are an error)
FUNCTIONS = MMENGINE_FUNCTIONS.children.get('mmdet') or Registry('function', parent=MMENGINE_FUNCTIONS,
                                                                   scope='mmdet')

__all__ = ['FUNCTIONS']
