"""Reference data sets of the lab: the 2-D circle task and MNIST-format IDX images."""

from grader.data.circle import CircleData, circle_sample
from grader.data.mnist import MnistData, MnistNotFound, load_mnist

__all__ = ["CircleData", "MnistData", "MnistNotFound", "circle_sample", "load_mnist"]
