"""
The parts of ``train`` (icnet_ros/tools/train.py wires them), one concern each.

* data.py: the training and validation sets, the sampler and the loader
* optim.py: optimiser, learning-rate schedule, loss and class weights, AMP scaler, starting weights
* normalise.py: uint8 batches -> the network's normalised input, as the engine does
* epoch.py: one training step and one epoch, losses read a window of steps at a time
* validation.py: confusion matrices through the deployed path, summed over processes
* reporting.py: metrics.csv, val_scores.jsonl, TensorBoard, previews, curves.png
* checkpoints.py: last.pt / best.pt with everything an exact --resume needs
* distributed.py: this process's place in a torchrun job

None of them imports rclpy.
"""
