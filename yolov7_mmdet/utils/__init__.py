"""Small utilities: stack check, config lookup, checkpoint loading."""
from .stack import StackError, check_stack, find_stack_problems  # noqa: F401
