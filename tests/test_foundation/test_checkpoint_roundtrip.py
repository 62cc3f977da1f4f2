"""Checkpoints written by mmengine's runner load again under torch >= 2.6 (``weights_only=True``).

The runner saves message-hub logs (HistoryBuffer, numpy) besides tensors; ``import yolov7_mmdet``
allowlists exactly those types. Resume must continue at the saved iteration, ``load_from`` must load,
and a pickle that tries to run code must still be refused.
"""
import os
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from yolov7_mmdet.utils.launch import check_checkpoint_fits


class TinyRegressor(BaseModel):
    def __init__(self, width: int = 4):
        super().__init__()
        self.linear = nn.Linear(width, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        batch = torch.stack(inputs)
        prediction = self.linear(batch)
        if mode == 'loss':
            return dict(loss=(prediction - batch.sum(1, keepdim=True)).pow(2).mean())
        return prediction


class RandomVectors(torch.utils.data.Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, index):
        return dict(inputs=torch.randn(4, generator=torch.Generator().manual_seed(index)))


def make_runner(work_dir, max_iters, **kwargs) -> Runner:
    return Runner(
        model=TinyRegressor(), work_dir=str(work_dir), experiment_name=f'run{max_iters}',
        train_dataloader=dict(dataset=RandomVectors(), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=8),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=1000),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='EMAHook', momentum=0.01)], default_scope='mmdet', **kwargs)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('ckpt')
    runner = make_runner(work_dir, max_iters=4)
    runner.train()
    return work_dir, runner


def test_plain_torch_load_reads_runner_checkpoints(trained):
    work_dir, _ = trained
    checkpoint = torch.load(work_dir / 'iter_4.pth')  # weights_only=True is torch's default
    assert checkpoint['meta']['iter'] == 4
    assert {'state_dict', 'optimizer', 'message_hub', 'ema_state_dict'} <= checkpoint.keys()


def test_resume_continues_at_the_saved_iteration(trained):
    work_dir, first = trained
    resumed = make_runner(work_dir, max_iters=6, resume=True)
    resumed.train()
    assert resumed.iter == 6
    lines = (work_dir / 'last_checkpoint').read_text().strip()
    assert lines.endswith('iter_6.pth')
    # the resumed run started from iteration 4's state, not from scratch
    history = resumed.message_hub.get_scalar('train/loss')
    assert len(history.data[0]) == 6


def test_load_from_loads_the_weights(trained):
    work_dir, first = trained
    fresh = make_runner(work_dir / 'other', max_iters=4, load_from=str(work_dir / 'iter_4.pth'))
    fresh.call_hook('before_run')  # as train() and test() do before loading
    fresh.load_or_resume()
    saved = torch.load(work_dir / 'iter_4.pth')['state_dict']
    for key, value in fresh.model.state_dict().items():
        torch.testing.assert_close(value, saved[key])


class RunsCode:
    def __reduce__(self):
        return (os.system, ('echo should-not-run',))


class ReachesGetattr:
    """getattr is allowed only for HistoryBuffer's statistics methods, not for other attributes."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return (getattr, (HistoryBuffer, self.name))


@pytest.mark.parametrize('payload', [RunsCode(), ReachesGetattr('register_statistics'),
                                     ReachesGetattr('__init__')])
def test_unsafe_pickles_are_still_refused(tmp_path, payload):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': payload}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_checkpoint_of_another_model_is_refused(trained, tmp_path):
    work_dir, _ = trained
    check_checkpoint_fits(TinyRegressor(), str(work_dir / 'iter_4.pth'))  # fits: no error
    with pytest.raises(ValueError, match=r'shape of linear.weight: checkpoint \(1, 4\) vs model \(1, 8\)'):
        check_checkpoint_fits(TinyRegressor(width=8), str(work_dir / 'iter_4.pth'))
    with pytest.raises(FileNotFoundError):
        check_checkpoint_fits(TinyRegressor(), str(tmp_path / 'missing.pth'))
