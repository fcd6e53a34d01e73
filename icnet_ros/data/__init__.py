"""
Reading data: images, data sets, label maps, augmentation; ROS bags in ``bags/``.

Images: ``image_io`` (camera encodings to 8-bit colour and back, image files, KITTI colour
ground truth, ``DataError``), ``cv_compat`` (OpenCV version differences).  Data sets:
``datasets`` (KITTI road, CamVid, image/mask folders, bags), ``sources`` (several mixed by
share, held-out tails), ``damaged`` (damaged samples), ``play_source`` (what ``play``
plays).  Label maps: ``label_maps``.  Transforms: ``transforms`` (training augmentation),
``perturb`` (``evaluate --perturb``'s camera changes).

Imports only the core helpers (classes, ground geometry, optional), never the tools,
training, bench or ROS.
"""
