"""Training stops at the first NaN loss, names it, and leaves the EMA and the checkpoints clean."""
import pytest
import torch
from engine_toys import ToyDetector, make_runner

from yolov7_mmdet.engine.hooks import NonFiniteLossError, YOLOv7EMAHook


def test_nan_loss_stops_with_iteration_and_component(tmp_path):
    # forward 5 (0-based) is iteration 6, the 2nd batch of epoch 2 (4 batches per epoch)
    runner = make_runner(tmp_path, name='nan', max_epochs=3, model=ToyDetector(nan_at_forward=5))
    with pytest.raises(NonFiniteLossError) as error:
        runner.train()
    message = str(error.value)
    assert 'iteration 6 ' in message and 'Epoch(train) [2][2/4]' in message
    assert 'loss_obj=nan' in message and 'loss_box=' in message.split('finite:')[1]

    assert (tmp_path / 'epoch_1.pth').is_file() and not (tmp_path / 'epoch_2.pth').exists()
    assert (tmp_path / 'last_checkpoint').read_text().endswith('epoch_1.pth')
    ema = next(h for h in runner.hooks if isinstance(h, YOLOv7EMAHook)).ema_model
    assert all(torch.isfinite(v).all() for v in ema.state_dict().values())


def test_finite_losses_pass(tmp_path):
    runner = make_runner(tmp_path, name='finite', max_epochs=1)
    runner.train()
    assert runner.iter == 4
