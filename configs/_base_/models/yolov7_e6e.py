# YOLOv7-E6E, official cfg/training/yolov7-e6e.yaml: 166,408,884 parameters (80 classes) with the aux
# head, 151,687,420 after switch_to_deploy(). E6 with every ELAN a grouped E-ELAN (g=2); the aux head
# reads the second E-ELAN branch of each top-down block ("partial aux").
_base_ = './yolov7_e6.py'

model = dict(backbone=dict(arch='e6e'), neck=dict(arch='e6e'))
