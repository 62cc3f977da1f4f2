"""Install yolov7-mmdet (package ``yolov7_mmdet``), shipping ``configs/`` inside the package.

A regular (wheel) build copies ``configs/`` to ``yolov7_mmdet/.mim/configs`` so that
``yolov7_mmdet.config_path('yolov7/...')`` finds them anywhere; an editable install reads the
repository's ``configs/`` directly.
"""
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def read_version() -> str:
    namespace: dict = {}
    exec((ROOT / 'yolov7_mmdet' / 'version.py').read_text(), namespace)
    return namespace['__version__']


class BuildPyWithConfigs(build_py):
    """Copy ``configs/`` into the built package as ``yolov7_mmdet/.mim/configs``."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / 'yolov7_mmdet' / '.mim' / 'configs'
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(ROOT / 'configs', target)


setup(
    name='yolov7-mmdet',
    version=read_version(),
    description='YOLOv7 (trainable bag-of-freebies) as an MMDetection 3.x plugin',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['yolov7_mmdet', 'yolov7_mmdet.*']),
    install_requires=[
        'torch>=2.6',  # safe (weights_only) checkpoint loading: yolov7_mmdet/utils/stack.py
        'mmengine>=0.10.0,<1.0',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmdet>=3.3.0,<3.4',
        'numpy',
        'pycocotools',
        'setuptools>=77.0.3,<82',  # mmengine 0.10.7 imports pkg_resources for mmdet:: configs
    ],
    extras_require={'tests': ['pytest>=8']},
    cmdclass={'build_py': BuildPyWithConfigs},
    zip_safe=False,
)
