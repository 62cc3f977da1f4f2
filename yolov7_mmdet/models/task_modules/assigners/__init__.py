"""YOLOv7 label assignment (``TASK_UTILS``): candidate regions and batched SimOTA.

See ``docs/label_assignment.md`` for the lead-guided, coarse-to-fine scheme built from these parts.
"""
from .candidate_region import CandidateSlots, YOLOv7CandidateRegion
from .gt_instances import sanitize_gt, stack_gt_instances
from .simota_assigner import YOLOv7AssignResult, YOLOv7SimOTAAssigner, decode_boxes

__all__ = [
    'CandidateSlots', 'YOLOv7CandidateRegion', 'YOLOv7SimOTAAssigner', 'YOLOv7AssignResult',
    'decode_boxes', 'sanitize_gt', 'stack_gt_instances'
]
