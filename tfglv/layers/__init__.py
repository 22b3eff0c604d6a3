"""Plain Keras layers shared by the flows, the encoder and the prior."""

from tfglv.layers.weight_norm import (WeightNormConv2D, WeightNormDense,
                                       fan_in_uniform)
