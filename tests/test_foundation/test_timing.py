"""yolov7_mmdet.utils.timing: calls taken in turns, warm-up rounds untimed, the median per call."""
import itertools

from yolov7_mmdet.utils import timing


def test_calls_take_turns_and_only_timed_rounds_count(monkeypatch):
    clock = itertools.count()  # every perf_counter() call ticks one second
    monkeypatch.setattr(timing.time, 'perf_counter', lambda: next(clock))
    order = []
    calls = {'a': lambda: order.append('a'), 'b': lambda: [order.append('b'), next(clock)]}
    timings = timing.interleaved_medians(calls, warmup=2, repeats=3)
    assert order == ['a', 'b'] * 5
    assert timings == {'a': timing.Timing(1, None), 'b': timing.Timing(2, None)}
