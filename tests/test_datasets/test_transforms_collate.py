"""``yolov7_collate``: stacks equal-size images, falls back to a list, and preprocesses identically."""
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.structures import DetDataSample
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS

from yolov7_mmdet.datasets.collate import yolov7_collate


def samples(shapes):
    generator = torch.Generator().manual_seed(0)
    return [dict(inputs=torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator),
                 data_samples=DetDataSample(metainfo=dict(img_shape=shape[1:])))
            for shape in shapes]


def test_equal_sizes_are_stacked_and_preprocess_like_the_list():
    batch = samples([(3, 40, 64)] * 3)
    stacked = yolov7_collate(batch)
    assert stacked['inputs'].shape == (3, 3, 40, 64) and stacked['inputs'].dtype == torch.uint8
    assert len(stacked['data_samples']) == 3
    preprocessor = DetDataPreprocessor(mean=[0, 0, 0], std=[255, 255, 255], bgr_to_rgb=True,
                                       pad_size_divisor=32)
    expected = preprocessor(pseudo_collate(batch), training=True)
    got = preprocessor(stacked, training=True)
    torch.testing.assert_close(got['inputs'], expected['inputs'])
    assert got['inputs'].shape == (3, 3, 64, 64)  # padded to the divisor either way
    assert [s.batch_input_shape for s in got['data_samples']] == [(64, 64)] * 3


def test_mixed_sizes_fall_back_to_the_list():
    batch = samples([(3, 40, 64), (3, 32, 32)])
    out = yolov7_collate(batch)
    assert isinstance(out['inputs'], list) and [t.shape[1:] for t in out['inputs']] == [(40, 64),
                                                                                       (32, 32)]


def test_registered_for_dataloader_configs():
    assert FUNCTIONS.get('yolov7_collate') is yolov7_collate
