# Short name of configs/yolov7/yolov7_l_8xb16-300e_coco.py.
_base_ = './yolov7/yolov7_l_8xb16-300e_coco.py'
