"""Seeing the ideas: label assignments collected from the project's own assigner, and figures."""
from .assignment import (HeadAssignment, ImageAssignment, assign_image, assignment_summary,
                         busiest_level, candidate_cells, constraint_cells, positive_cells)
from .drawing import draw_assignment, save_small_png

__all__ = ['HeadAssignment', 'ImageAssignment', 'assign_image', 'assignment_summary', 'busiest_level',
           'candidate_cells', 'constraint_cells', 'positive_cells', 'draw_assignment', 'save_small_png']
