"""Interleaved timing: several callables measured round by round, so that load changes hit all alike."""
import statistics
import time
from typing import Callable, Dict, Hashable, List, Mapping, NamedTuple, Optional, TypeVar, Union

import torch

Key = TypeVar('Key', bound=Hashable)


class Timing(NamedTuple):
    """The median wall time of a call and the peak memory it allocated."""
    seconds: float
    peak_mb: Optional[float]  # the last round's peak of allocated CUDA memory; None off CUDA


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a CUDA device); a no-op on any other device."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed_call(call: Callable[[], object], device: torch.device) -> Timing:
    """Run ``call`` once, queued device work included; the peak memory is CUDA's only."""
    on_cuda = device.type == 'cuda'
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    seconds = time.perf_counter() - start
    return Timing(seconds, torch.cuda.max_memory_allocated(device) / 2**20 if on_cuda else None)


def interleaved_medians(calls: Mapping[Key, Callable[[], object]],
                        *,
                        warmup: int,
                        repeats: int,
                        device: Union[str, torch.device] = 'cpu',
                        print_rounds: bool = False) -> Dict[Key, Timing]:
    """Time every call in turns: each round runs each call once, in order.

    Args:
        calls: the callables to time, by key; each takes no argument.
        warmup: untimed rounds first (they compile, allocate and tune what the calls use).
        repeats: timed rounds after them.
        device: where the calls queue their work: a CUDA device is synchronised around each call
            and its peak allocated memory recorded.
        print_rounds: print a line after each round (``round i/n done``).

    Returns:
        dict: per key, the :class:`Timing` of its call: the median over the ``repeats`` rounds.
    """
    device = torch.device(device)
    seconds: Dict[Key, List[float]] = {key: [] for key in calls}
    peak_mb: Dict[Key, Optional[float]] = dict.fromkeys(calls)
    rounds = warmup + repeats
    for round_index in range(rounds):
        for key, call in calls.items():
            timing = timed_call(call, device)
            if round_index >= warmup:
                seconds[key].append(timing.seconds)
            peak_mb[key] = timing.peak_mb
        if print_rounds:
            print(f'  round {round_index + 1}/{rounds} done', flush=True)
    return {key: Timing(statistics.median(values), peak_mb[key]) for key, values in seconds.items()}
