"""``--auto-scale-lr``: training uses the scaled lr0, and the log's ``base_lr`` shows that value."""
import pytest
from engine_toys import make_runner


@pytest.mark.parametrize('base_batch_size, expected_lr0', [(8, 0.0025), (2, 0.01)])
def test_logged_base_lr_is_the_scaled_lr0(tmp_path, base_batch_size, expected_lr0):
    # batch 2 on 1 process; the optimizer's configured lr is 0.01
    runner = make_runner(tmp_path, name=f'scaled{base_batch_size}', max_epochs=2,
                         auto_scale_lr=dict(enable=True, base_batch_size=base_batch_size))
    runner.train()
    groups = runner.optim_wrapper.optimizer.param_groups
    assert [group['initial_lr'] for group in groups] == pytest.approx([expected_lr0] * 3)
    logged = runner.message_hub.get_scalar('train/base_lr').data[0]
    assert list(logged) == pytest.approx([expected_lr0] * len(logged))
