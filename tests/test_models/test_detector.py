"""The YOLOv7 detector in mmdet's contract: loss / predict / tensor modes, per-level output shapes."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from yolov7_builders import ARCHS, P6_ARCHS, build_model


def batch(model, size, *, num_images=2):
    images, samples = [], []
    for i in range(num_images):
        images.append(torch.randint(0, 256, (3, size, size), dtype=torch.uint8))
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(2 * size, 2 * size),
                                             scale_factor=(0.5, 0.5)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor([[4., 6., 30., 40.], [10., 8., 60., 50.]])[:i + 1],
                                           labels=torch.tensor([1, 7])[:i + 1])
        samples.append(sample)
    return model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)


@pytest.mark.parametrize('arch', ARCHS)
def test_per_level_output_shapes_at_640(arch):
    """Official: 3 (P5) or 4 (P6) levels of 3 x 85 channels at input / stride."""
    model = build_model(arch, device='meta').eval()
    strides = (8, 16, 32, 64) if arch in P6_ARCHS else (8, 16, 32)
    assert model.backbone.strides == strides
    lead, aux = model._forward(torch.empty(1, 3, 640, 640, device='meta'))
    assert [tuple(m.shape) for m in lead] == [(1, 255, 640 // s, 640 // s) for s in strides]
    if arch in P6_ARCHS:
        assert [m.shape for m in aux] == [m.shape for m in lead]
    else:
        assert aux is None


def test_tiny_loss_predict_and_tensor_modes():
    torch.manual_seed(0)
    model = build_model('tiny')
    model.init_weights()
    data = batch(model, 64)
    model.train()
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_box', 'loss_obj', 'loss_cls'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        lead, aux = model(**data, mode='tensor')
        results = model(**data, mode='predict')
    assert aux is None and [m.shape[-1] for m in lead] == [8, 4, 2]
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances
        assert pred.bboxes.shape[1] == 4 and len(pred.bboxes) == len(pred.scores) == len(pred.labels)
        assert len(pred) <= 300
        # rescaled to the 128x128 original image (scale_factor 0.5) and clipped to it
        assert (pred.bboxes >= 0).all() and (pred.bboxes <= 128).all()


def test_p6_training_has_aux_losses_and_predicts_with_the_lead_head():
    torch.manual_seed(0)
    model = build_model('w6')
    data = batch(model, 64)
    model.train()
    losses = model(**data, mode='loss')
    assert {'loss_aux_box', 'loss_aux_obj', 'loss_aux_cls'} <= set(losses)
    model.eval()
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert len(results) == 2 and 'pred_instances' in results[0]
